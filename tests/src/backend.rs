//! The storage backend of the servers a test starts: SQLite (the file in the data
//! directory) or PostgreSQL (a fresh database per [`crate::TestServer`], from
//! `tokenledger_testpg`). A test runs on one backend per thread; [`both_backends!`] makes
//! one test per backend from one body.
//!
//! ```ignore
//! both_backends!(suspensions_are_logged);
//! /// What the test shows.
//! fn suspensions_are_logged() {
//!     let server = TestServer::start(dir.path()); // on this test's backend
//! }
//! // tests `suspensions_are_logged::sqlite` and `suspensions_are_logged::postgres`
//! ```

use std::cell::Cell;

/// Where a test's servers keep the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `tokenledger.db` in the data directory (no `--database`).
    Sqlite,
    /// A fresh PostgreSQL database per server (`--database postgres://...`).
    Postgres,
}

thread_local! {
    static CURRENT: Cell<Backend> = const { Cell::new(Backend::Sqlite) };
}

/// The backend of the servers this thread starts (SQLite unless [`run_on`] says otherwise).
pub fn current() -> Backend {
    CURRENT.with(Cell::get)
}

/// Runs `test` with the servers this thread starts on `backend`.
pub fn run_on(backend: Backend, test: impl FnOnce()) {
    let before = CURRENT.with(|c| c.replace(backend));
    test();
    CURRENT.with(|c| c.set(before));
}

/// Makes, of each function `name` given (a test body, without `#[test]`), the tests
/// `name::sqlite` and `name::postgres`: the body runs once with the servers it starts on
/// SQLite and once on PostgreSQL. Written above the function, before its doc comment; the
/// body stays an ordinary function, which rustfmt formats.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                $crate::backend::run_on($crate::backend::Backend::Sqlite, super::$name);
            }

            #[test]
            fn postgres() {
                $crate::backend::run_on($crate::backend::Backend::Postgres, super::$name);
            }
        }
    )+};
}
