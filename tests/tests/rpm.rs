//! The EL9 packages: `packaging/rpm/build.sh` run on the binaries this build made, and what rpm
//! says each package holds: files with their modes, owners and flags (config, noreplace, doc),
//! contents of the shipped units and configuration, scriptlets and requirements.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tokenledger_e2e::{cli_binary, netns, server_binary};

/// EL9's glibc: no package may need a newer symbol version.
const EL9_GLIBC: (u32, u32) = (2, 34);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

/// `rpm -qp` of `package` with more arguments.
fn query(package: &Path, args: &[&str]) -> String {
    stdout(Command::new("rpm").arg("-qp").args(args).arg(package))
}

/// One file of a package as rpm lists it.
#[derive(Debug)]
struct File {
    /// `ls -l` style: `-rwxr-xr-x`, `drwx------`.
    perms: String,
    user: String,
    group: String,
    /// rpm's flags: `c` config, `n` noreplace, `d` doc.
    flags: String,
    /// SHA-256 of a regular file's content, hex.
    digest: String,
}

/// Every file of `package`, by path.
fn files(package: &Path) -> BTreeMap<String, File> {
    // rpm's number for SHA-256 (RFC 4880): the digests below are comparable with ours.
    assert_eq!(query(package, &["--qf", "%{FILEDIGESTALGO}"]), "8");
    let format = "[%{FILENAMES}\t%{FILEMODES:perms}\t%{FILEUSERNAME}\t%{FILEGROUPNAME}\t\
                  %{FILEFLAGS:fflags}\t%{FILEDIGESTS}\n]";
    query(package, &["--qf", format])
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 6, "{line}");
            let file = File {
                perms: f[1].into(),
                user: f[2].into(),
                group: f[3].into(),
                flags: f[4].into(),
                digest: f[5].into(),
            };
            (f[0].to_string(), file)
        })
        .collect()
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Asserts `path` is in `files` with these permissions and owner, and returns it.
fn expect<'a>(files: &'a BTreeMap<String, File>, path: &str, perms: &str, owner: &str) -> &'a File {
    let file = files
        .get(path)
        .unwrap_or_else(|| panic!("{path} is not packaged: {:?}", files.keys()));
    assert_eq!(file.perms, perms, "{path}");
    assert_eq!(format!("{}:{}", file.user, file.group), owner, "{path}");
    file
}

/// Asserts `path` is packaged as a root-owned 0644 copy of `source` (in the repository).
fn expect_copy(files: &BTreeMap<String, File>, path: &str, source: &str) {
    let file = expect(files, path, "-rw-r--r--", "root:root");
    assert_eq!(
        file.digest,
        sha256_hex(&repo().join(source)),
        "{path} is not {source}"
    );
}

/// The `major.minor` of every `GLIBC_x.y` in `requires`.
fn glibc_versions(requires: &str) -> Vec<(u32, u32)> {
    requires
        .split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let version: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .collect()
}

/// What both packages' `%pre` must do: make the user of the sysusers file.
fn assert_creates_the_sysusers_user(scripts: &str) {
    let sysusers =
        std::fs::read_to_string(repo().join("packaging/sysusers.d/tokenledger.conf")).unwrap();
    let line = sysusers
        .lines()
        .find(|l| l.starts_with("u "))
        .expect("a user line in the sysusers file");
    let gecos = line.split('"').nth(1).expect("a quoted GECOS");
    let home = line
        .split('"')
        .nth(2)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let pre = scripts
        .split("preinstall scriptlet")
        .nth(1)
        .unwrap_or_else(|| panic!("no %pre: {scripts}"));
    assert!(pre.contains("groupadd -r tokenledger"), "{pre}");
    let useradd = pre
        .lines()
        .find(|l| l.contains("useradd -r"))
        .unwrap_or_else(|| panic!("no useradd in %pre: {pre}"));
    for wanted in [
        "-g tokenledger ".to_string(),
        format!("-d {home} "),
        "-s /sbin/nologin ".to_string(),
        format!("-c \"{gecos}\" tokenledger"),
    ] {
        assert!(useradd.contains(&wanted), "{wanted:?} in {useradd}");
    }
}

fn assert_el9_installable(package: &Path) {
    let requires = query(package, &["--requires"]);
    let glibc = glibc_versions(&requires);
    assert!(
        !glibc.is_empty(),
        "rpm found no glibc requirement (elfdeps): {requires}"
    );
    let newest = glibc.iter().max().unwrap();
    assert!(
        *newest <= EL9_GLIBC,
        "{} needs glibc {newest:?}, EL9 has {EL9_GLIBC:?}:\n{requires}",
        package.display()
    );
    for wanted in ["shadow-utils", "systemd"] {
        assert!(
            requires.lines().any(|l| l == wanted),
            "{wanted}: {requires}"
        );
    }
}

fn check_server_package(package: &Path, version: &str) {
    assert_eq!(
        query(package, &["--qf", "%{NAME} %{VERSION} %{RELEASE}"]),
        format!("tokenledger-server {version} 1.el9")
    );
    let files = files(package);
    expect(
        &files,
        "/usr/bin/tokenledger-server",
        "-rwxr-xr-x",
        "root:root",
    );
    expect_copy(
        &files,
        "/usr/lib/systemd/system/tokenledger-server.service",
        "packaging/systemd/tokenledger-server.service",
    );
    expect_copy(
        &files,
        "/usr/lib/sysusers.d/tokenledger.conf",
        "packaging/sysusers.d/tokenledger.conf",
    );
    expect(&files, "/etc/tokenledger", "drwxr-xr-x", "root:root");
    expect_copy(
        &files,
        "/etc/tokenledger/server.toml",
        "packaging/server.toml.example",
    );
    let config = &files["/etc/tokenledger/server.toml"];
    assert!(
        config.flags.contains('c') && config.flags.contains('n'),
        "server.toml is %config(noreplace): {config:?}"
    );
    expect(
        &files,
        "/var/lib/tokenledger-server",
        "drwx------",
        "tokenledger:tokenledger",
    );
    assert_eq!(files.len(), 6, "nothing else: {:?}", files.keys());
    assert_eq!(
        query(package, &["--configfiles"]).trim(),
        "/etc/tokenledger/server.toml"
    );

    let scripts = query(package, &["--scripts"]);
    assert_creates_the_sysusers_user(&scripts);
    for wanted in [
        "systemctl --no-reload preset tokenledger-server.service",
        "systemctl --no-reload disable --now tokenledger-server.service",
        "systemctl try-restart tokenledger-server.service",
    ] {
        assert!(scripts.contains(wanted), "{wanted}:\n{scripts}");
    }
    assert_el9_installable(package);
}

fn check_cli_package(package: &Path, version: &str) {
    assert_eq!(
        query(package, &["--qf", "%{NAME} %{VERSION} %{RELEASE}"]),
        format!("tokenledger {version} 1.el9")
    );
    let files = files(package);
    expect(&files, "/usr/bin/tokenledger", "-rwxr-xr-x", "root:root");
    let units = [
        "tokenledger-blocklist-pull@.service",
        "tokenledger-blocklist-pull@.timer",
        "tokenledger-blocklist-follow@.service",
    ];
    for unit in units {
        expect_copy(
            &files,
            &format!("/usr/lib/systemd/system/{unit}"),
            &format!("packaging/systemd/{unit}"),
        );
    }
    expect_copy(
        &files,
        "/usr/lib/sysusers.d/tokenledger.conf",
        "packaging/sysusers.d/tokenledger.conf",
    );
    expect(&files, "/etc/tokenledger", "drwxr-xr-x", "root:root");
    expect(&files, "/etc/tokenledger/pull", "drwx------", "root:root");
    expect(
        &files,
        "/usr/share/doc/tokenledger",
        "drwxr-xr-x",
        "root:root",
    );
    for (doc, source) in [
        ("check.toml.example", "packaging/check.toml.example"),
        ("pull.env.example", "packaging/systemd/pull.env.example"),
    ] {
        let path = format!("/usr/share/doc/tokenledger/{doc}");
        expect_copy(&files, &path, source);
        assert!(
            files[&path].flags.contains('d'),
            "{path}: {:?}",
            files[&path]
        );
    }
    for completion in [
        "/usr/share/bash-completion/completions/tokenledger",
        "/usr/share/zsh/site-functions/_tokenledger",
        "/usr/share/fish/vendor_completions.d/tokenledger.fish",
    ] {
        expect(&files, completion, "-rw-r--r--", "root:root");
    }

    // One manual page per command, as `tokenledger man --out` writes them, gzipped.
    let dir = tempfile::tempdir().unwrap();
    run(Command::new(cli_binary())
        .args(["man", "--out"])
        .arg(dir.path()));
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    assert!(pages.len() > 20, "{pages:?}");
    let mut packaged: Vec<String> = files
        .keys()
        .filter_map(|p| p.strip_prefix("/usr/share/man/man1/"))
        .map(|p| {
            p.strip_suffix(".gz")
                .unwrap_or_else(|| panic!("{p} is not gzipped"))
                .to_string()
        })
        .collect();
    packaged.sort();
    assert_eq!(packaged, pages);
    for page in files
        .keys()
        .filter(|p| p.starts_with("/usr/share/man/man1/"))
    {
        expect(&files, page, "-rw-r--r--", "root:root");
    }
    // Every page a shipped unit names is one of them.
    for unit in units {
        let text = std::fs::read_to_string(repo().join("packaging/systemd").join(unit)).unwrap();
        for line in text.lines().filter(|l| l.starts_with("Documentation=man:")) {
            let page = line["Documentation=man:".len()..].replace("(1)", ".1");
            assert!(pages.contains(&page), "{unit}: {line}");
        }
    }
    let man_dirs = ["/usr/share/man/man1/"];
    let others = files
        .keys()
        .filter(|p| !man_dirs.iter().any(|d| p.starts_with(d)))
        .count();
    assert_eq!(
        others,
        1 + units.len() + 1 + 2 + 3 + 3,
        "nothing else: {:?}",
        files.keys()
    );
    assert_eq!(query(package, &["--configfiles"]).trim(), "");

    let scripts = query(package, &["--scripts"]);
    assert_creates_the_sysusers_user(&scripts);
    assert!(
        scripts.contains("systemctl try-restart 'tokenledger-blocklist-follow@*.service'"),
        "{scripts}"
    );
    assert_el9_installable(package);
}

#[test]
fn build_sh_packages_the_built_binaries_as_el9_rpms_of_server_and_cli() {
    netns::require_packages(&["rpm", "binutils"]);
    let out = tempfile::tempdir().unwrap();
    let bin_dir = server_binary().parent().unwrap().to_path_buf();
    assert_eq!(cli_binary().parent().unwrap(), bin_dir);
    let listed = stdout(
        Command::new(repo().join("packaging/rpm/build.sh"))
            .arg("--bin-dir")
            .arg(&bin_dir)
            .arg("--out")
            .arg(out.path()),
    );
    let version = stdout(Command::new(cli_binary()).arg("--version"))
        .trim()
        .strip_prefix("tokenledger ")
        .unwrap()
        .to_string();
    let arch = stdout(Command::new("uname").arg("-m")).trim().to_string();
    let server = out
        .path()
        .join(format!("tokenledger-server-{version}-1.el9.{arch}.rpm"));
    let cli = out
        .path()
        .join(format!("tokenledger-{version}-1.el9.{arch}.rpm"));
    for package in [&server, &cli] {
        assert!(
            listed.lines().any(|l| Path::new(l) == package.as_path()),
            "{} not listed:\n{listed}",
            package.display()
        );
    }
    check_server_package(&server, &version);
    check_cli_package(&cli, &version);
    install_together_and_erase(&server, &cli, &version);
}

/// `rpm` on the scratch root `root`, without dependencies or scriptlets (no EL9 there).
fn rpm_in(root: &Path, args: &[&str], packages: &[&Path]) -> String {
    stdout(
        Command::new("rpm")
            .arg("--root")
            .arg(root)
            .args(args)
            .args(["--nodeps", "--noscripts"])
            .args(packages),
    )
}

/// Both packages install in one transaction (the files they share do not conflict), the
/// installed CLI runs, and erasing the server keeps the ledger's data and the edited
/// configuration.
fn install_together_and_erase(server: &Path, cli: &Path, version: &str) {
    let root = tempfile::tempdir().unwrap();
    run(Command::new("rpm")
        .arg("--root")
        .arg(root.path())
        .arg("--initdb"));
    rpm_in(root.path(), &["-i"], &[server, cli]);
    let installed = stdout(Command::new(root.path().join("usr/bin/tokenledger")).arg("--version"));
    assert_eq!(installed.trim(), format!("tokenledger {version}"));
    for unit in [
        "tokenledger-server.service",
        "tokenledger-blocklist-follow@.service",
    ] {
        assert_eq!(
            sha256_hex(&root.path().join("usr/lib/systemd/system").join(unit)),
            sha256_hex(&repo().join("packaging/systemd").join(unit)),
            "{unit}"
        );
    }

    let config = root.path().join("etc/tokenledger/server.toml");
    let edited = "[log]\norigin = \"ledger.site.example/log\"\n";
    std::fs::write(&config, edited).unwrap();
    let data = root
        .path()
        .join("var/lib/tokenledger-server/tokenledger.db");
    std::fs::write(&data, b"the ledger").unwrap();
    rpm_in(root.path(), &["-e"], &[Path::new("tokenledger-server")]);
    assert!(!root.path().join("usr/bin/tokenledger-server").exists());
    assert_eq!(
        std::fs::read(&data).unwrap(),
        b"the ledger",
        "the data stays"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("etc/tokenledger/server.toml.rpmsave")).unwrap(),
        edited,
        "an edited configuration is kept as .rpmsave"
    );
    assert!(
        root.path()
            .join("usr/lib/sysusers.d/tokenledger.conf")
            .is_file(),
        "still the CLI's"
    );
}

#[test]
fn build_sh_refuses_binaries_that_need_a_newer_glibc_than_allowed() {
    netns::require_packages(&["rpm", "binutils"]);
    let out = tempfile::tempdir().unwrap();
    let refused = Command::new(repo().join("packaging/rpm/build.sh"))
        .arg("--bin-dir")
        .arg(server_binary().parent().unwrap())
        .arg("--out")
        .arg(out.path())
        // Older than any glibc an x86-64 or aarch64 binary can need.
        .args(["--glibc-max", "2.0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        stderr.contains(", newer than 2.0: build on an EL9 host"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "no package"
    );
}
