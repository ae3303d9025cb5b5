//! Rebuilds the server when a migration is added, since `sqlx::migrate!` embeds them.
fn main() {
    println!("cargo:rerun-if-changed=../schema/sqlite");
    println!("cargo:rerun-if-changed=../schema/postgres");
}
