//! `scripts/build-deb.sh` makes a package that unpacks into a scratch root with the binary, the
//! unit, the default config marked as a conffile, and maintainer scripts that enable nothing.

use crate::support::repo;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_package_holds_the_expected_files_and_keeps_the_config_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let deb = run(Command::new(repo("scripts/build-deb.sh"))
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_edgeinfer"))
        .arg("--out")
        .arg(&out)
        .arg("--uncompressed"));
    let deb = std::path::PathBuf::from(deb.trim());
    assert!(deb.exists(), "{}", deb.display());

    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for path in [
        "./usr/bin/edgeinfer",
        "./lib/systemd/system/edgeinfer.service",
        "./etc/edgeinfer/edgeinfer.toml",
        "./usr/share/doc/edgeinfer/copyright",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(path)),
            "{path} missing:\n{contents}"
        );
    }
    assert!(
        contents.lines().all(|l| l.contains("root/root")),
        "{contents}"
    );

    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/edgeinfer/edgeinfer.toml");
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system"), "{postinst}");
    assert!(
        !postinst
            .lines()
            .any(|l| !l.trim_start().starts_with('#')
                && (l.contains("enable") || l.contains("start"))),
        "the package must not enable or start the service:\n{postinst}"
    );

    let root = dir.path().join("root");
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&root));
    let installed = root.join("usr/bin/edgeinfer");
    let version = run(Command::new(&installed).arg("--version"));
    assert!(version.starts_with("edgeinfer "), "{version}");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/edgeinfer/edgeinfer.toml")).unwrap(),
        std::fs::read_to_string(repo("src/config/default.toml")).unwrap()
    );
    assert_eq!(
        std::fs::read(root.join("lib/systemd/system/edgeinfer.service")).unwrap(),
        std::fs::read(repo("systemd/edgeinfer.service")).unwrap()
    );
}
