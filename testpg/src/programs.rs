//! PostgreSQL's programs: where they are (`PATH`, else the newest `/usr/lib/postgresql/*/bin`),
//! and running them; the server's as the `postgres` user when this process is root, since
//! `initdb`, `pg_ctl` and `postgres` refuse to run as root.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The user the server programs run as when this process is root.
pub(crate) const SERVER_USER: &str = "postgres";

/// The directory of the server programs (`initdb`, `pg_ctl`, `postgres`, `pg_basebackup`).
/// Panics, saying how to get them, when there are none.
pub(crate) fn server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        find("initdb")
            .or_else(install_server)
            .map(|initdb| std::fs::canonicalize(&initdb).unwrap_or(initdb))
            .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| {
                panic!(
                    "a PostgreSQL test needs a database server and none can be had: set {} to a \
                     superuser's URL (postgres://USER@HOST:PORT/DB), or install PostgreSQL's server \
                     programs (initdb, pg_ctl; Debian: apt-get install postgresql); no initdb in \
                     PATH or /usr/lib/postgresql/*/bin",
                    crate::URL_VARIABLE
                )
            })
    })
}

/// Installs Debian's `postgresql` package when this process is root and apt-get is there (as
/// the daemon tests install theirs), waiting for another process's apt lock; then looks for
/// `initdb` again.
fn install_server() -> Option<PathBuf> {
    if !running_as_root() || find("apt-get").is_none() {
        return None;
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=600", "-y", "-q"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if !apt(&["install", "--no-install-recommends", "postgresql"]) {
        apt(&["update"]);
        apt(&["install", "--no-install-recommends", "postgresql"]);
    }
    find("initdb")
}

/// `program` of the server's directory, as a command run by the server's user.
pub(crate) fn server_command(program: &str) -> Command {
    let path = server_bin().join(program);
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", SERVER_USER, "--"]).arg(path);
        command
    } else {
        Command::new(path)
    }
}

/// Whether this process runs as root (`/proc/self` belongs to the process's user).
pub(crate) fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Hands `path` to the server's user when this process is root (a no-op otherwise).
pub(crate) fn give_to_server_user(path: &Path) {
    if !running_as_root() {
        return;
    }
    let out = Command::new("chown")
        .arg(format!("{SERVER_USER}:"))
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("chown cannot run: {e}"));
    assert!(
        out.status.success(),
        "running as root, the private PostgreSQL cluster runs as the user {SERVER_USER} (initdb \
         refuses root), and {} cannot be given to it: {}(create the user, or set {})",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        crate::URL_VARIABLE
    );
}

/// Runs `sql` with `psql` on the database of `url`; its tuples-only, unaligned output,
/// trimmed. Panics with psql's error when it fails.
pub(crate) fn psql(url: &str, sql: &str) -> String {
    try_psql(url, sql).unwrap_or_else(|e| panic!("psql {sql:?} failed: {e}"))
}

/// [`psql`], with the failure as a value.
pub(crate) fn try_psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(psql_program())
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .map_err(|e| format!("psql cannot run: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A plain-text `pg_dump` of the database of `url`. Panics when it fails.
pub(crate) fn pg_dump(url: &str) -> Vec<u8> {
    let program = find("pg_dump").unwrap_or_else(|| {
        panic!("pg_dump is missing (Debian: apt-get install postgresql-client)")
    });
    let out = Command::new(program)
        .args(["--no-owner", "-d", url])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap_or_else(|e| panic!("pg_dump cannot run: {e}"));
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        output_text(&out)
    );
    out.stdout
}

/// Combined output of a finished command, for messages.
pub(crate) fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn psql_program() -> &'static Path {
    static PSQL: OnceLock<PathBuf> = OnceLock::new();
    PSQL.get_or_init(|| {
        find("psql").unwrap_or_else(|| {
            panic!(
                "a PostgreSQL test needs psql (Debian: apt-get install postgresql-client); none in \
                 PATH or /usr/lib/postgresql/*/bin"
            )
        })
    })
}

/// `program` in `PATH`, else in the newest `/usr/lib/postgresql/<version>/bin`.
fn find(program: &str) -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    if in_path.is_some() {
        return in_path;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin").join(program)))
        })
        .filter(|(_, p)| p.is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}
