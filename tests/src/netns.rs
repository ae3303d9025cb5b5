//! Real daemons (ARC A-REX, XRootD) under test: their Debian packages, installed with
//! apt-get when missing, and a private network and mount namespace per test, so a daemon
//! listens on a loopback that nothing else shares and bind mounts over `/etc` paths stay
//! inside the test. A test that cannot get its daemon fails; it never skips.

use std::process::Command;

/// Set in the re-executed test process: the name of the test that runs inside.
const INSIDE: &str = "TOKENLEDGER_TEST_NAMESPACE";

/// Installs the Debian `packages` that are missing (apt-get, as CI's root does).
/// Panics, with apt's output, when they cannot be had.
pub fn require_packages(packages: &[&str]) {
    // One apt-get at a time in this test binary: its tests run on parallel threads, and
    // `apt-get update` fails at once on a held lists lock.
    static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = APT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return;
    }
    eprintln!("installing Debian packages {missing:?}");
    let apt = |args: &[&str]| {
        let out = Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=600", "-y", "-q"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .unwrap_or_else(|e| panic!("apt-get cannot run ({e}): the test needs {missing:?}"));
        assert!(
            out.status.success(),
            "apt-get {args:?} failed: the test needs {missing:?}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    apt(&["update"]);
    let mut install = vec!["install", "--no-install-recommends"];
    install.extend(&missing);
    apt(&install);
    for p in &missing {
        assert!(installed(p), "package {p} is still not installed");
    }
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.ends_with(b" installed"))
}

/// [`require_packages`] (outside: they are installed on the host), then [`inside`].
pub fn enter(name: &str, packages: &[&str]) -> bool {
    require_packages(packages);
    inside(name)
}

/// Runs the test `name` (this test binary's test of that exact name) again in new network
/// and mount namespaces, with the loopback up, and returns `true` there: the caller's body
/// then runs inside. Outside, it waits for that run, panics if it failed, and returns
/// `false`: the caller returns at once.
///
/// ```ignore
/// #[test]
/// fn arc_refuses() {
///     if !netns::inside("arc_refuses") { return; }
///     // ... the real test, on a private 127.0.0.1
/// }
/// ```
pub fn inside(name: &str) -> bool {
    if std::env::var(INSIDE).as_deref() == Ok(name) {
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("ip (iproute2) runs");
        assert!(up.success(), "cannot bring up the namespace's loopback");
        assert_private_network();
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let status = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INSIDE, name)
        .status()
        .unwrap_or_else(|e| panic!("unshare (util-linux) cannot run: {e}"));
    assert!(
        status.success(),
        "the test {name} failed inside its namespaces ({status}); its output is above"
    );
    false
}

/// Panics, refusing to mount over `target`, unless this process has another mount namespace
/// than its parent: the test process that ran `unshare` (in [`inside`]), in the host's mount
/// namespace. So a mount made after this check cannot reach the host.
pub fn assert_private_mount_namespace(target: &str) {
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    let parent = std::os::unix::process::parent_id().to_string();
    let (mine, outer) = (ns("self"), ns(&parent));
    assert!(
        mine.is_some() && outer.is_some() && mine != outer,
        "refusing to mount over {target} outside a private mount namespace (mine {mine:?}, \
         the parent's {outer:?}): run inside netns::inside"
    );
}

/// Inside: the namespace has no interface but the loopback.
fn assert_private_network() {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip (iproute2) runs");
    let links = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        links.lines().all(|l| l.contains(": lo:")),
        "not in a private network namespace: {links}"
    );
}
