// SPDX-License-Identifier: BSD-2-Clause
//! The isbootctl binary against the real iPXE tables in tests/data/ibft and against broken input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/ibft")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_isbootctl"))
        .args(args)
        .output()
        .expect("run isbootctl")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);
impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("isbootctl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
        Scratch(p)
    }
    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).expect("write");
        p.to_string_lossy().into_owned()
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture")
}

#[test]
fn json_of_the_nochap_table_is_exactly_what_ipxe_wrote() {
    let f = fixture("ibft-ipxe-dhcp-nochap.bin");
    let o = run(&["ibft", "--json", f.to_str().expect("utf8 path")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = format!(
        r#"{{
  "source": "{}",
  "table": {{
    "signature": "iBFT",
    "length": 580,
    "oem_id": "FENSYS",
    "oem_table_id": "iPXE"
  }},
  "initiator": {{
    "name": "iqn.2025-01.test.rig:initiator-ipxe"
  }},
  "nics": [
    {{
      "index": 0,
      "ip": "127.0.0.15",
      "prefix": 24,
      "gateway": "127.0.0.1",
      "dns": [
        "127.0.0.3"
      ],
      "dhcp_server": "127.0.0.1",
      "vlan": 0,
      "mac": "52:54:00:12:34:56",
      "origin": "dhcp",
      "pci_bdf": "00:02.0",
      "hostname": null,
      "valid": true,
      "boot_selected": true
    }}
  ],
  "targets": [
    {{
      "index": 0,
      "ip": "127.0.0.1",
      "port": 3260,
      "lun": 1,
      "lun_raw": "0001000000000000",
      "name": "iqn.2025-01.test.rig:tgt-nochap",
      "chap": "none",
      "chap_name": null,
      "chap_secret": null,
      "reverse_chap_name": null,
      "reverse_chap_secret": null,
      "nic_index": 0,
      "valid": true,
      "boot_selected": true
    }}
  ],
  "boot": {{
    "nic": 0,
    "target": 0
  }},
  "warnings": []
}}
"#,
        f.display()
    );
    assert_eq!(stdout(&o), want);
}

#[test]
fn mutual_chap_secrets_are_redacted_unless_asked_for() {
    let f = fixture("ibft-ipxe-dhcp-mutualchap.bin");
    let f = f.to_str().expect("utf8");
    for args in [vec!["ibft", f], vec!["ibft", "--json", f]] {
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(
            !out.contains("rigin-secret-12") && !out.contains("rigout-secret-12"),
            "{out}"
        );
        assert!(out.contains("<redacted>"), "{out}");
    }
    let o = run(&["ibft", "--json", "--show-secrets", f]);
    let out = stdout(&o);
    assert!(out.contains(r#""chap": "mutual""#), "{out}");
    assert!(out.contains(r#""chap_name": "rigin""#), "{out}");
    assert!(out.contains(r#""chap_secret": "rigin-secret-12""#), "{out}");
    assert!(out.contains(r#""reverse_chap_name": "rigout""#), "{out}");
    assert!(
        out.contains(r#""reverse_chap_secret": "rigout-secret-12""#),
        "{out}"
    );
}

#[test]
fn text_output_of_the_chap_table() {
    let f = fixture("ibft-ipxe-dhcp-chap.bin");
    let o = run(&["ibft", f.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "iBFT from {}: 600 bytes, signature iBFT, OEM \"FENSYS\" \"iPXE\"",
            f.display()
        )
    );
    assert_eq!(&lines[1..], [
        "initiator: iqn.2025-01.test.rig:initiator-ipxe",
        "nic0: 127.0.0.15/24 gateway 127.0.0.1 dns 127.0.0.3 dhcp 127.0.0.1 mac 52:54:00:12:34:56 pci 00:02.0 origin dhcp [valid, boot-selected]",
        "target0: iqn.2025-01.test.rig:tgt-chap at 127.0.0.1:3260 lun 1 via nic index 0 auth chap user rigin secret <redacted> [valid, boot-selected]",
        "boot: nic0 -> target0",
    ]);
}

#[test]
fn two_targets_decode_with_their_own_ports_and_luns() {
    let f = fixture("ibft-ipxe-dhcp-two-targets.bin");
    let o = run(&["ibft", "--json", f.to_str().expect("utf8")]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    for want in [
        r#""name": "iqn.2025-01.test.rig.istgt:disk-mutual""#,
        r#""port": 3261"#,
        r#""lun": 0"#,
        r#""lun": 1"#,
        r#""target": 0"#,
    ] {
        assert!(out.contains(want), "missing {want} in {out}");
    }
}

/// 1 MiB of "physical memory" with the real table at iPXE's address and the decoys the fixtures'
/// notes describe: a bare "iBFT" string and a stale copy with a wrong checksum, both earlier.
fn memory_image(table: &[u8], at: usize) -> Vec<u8> {
    let mut m = vec![0u8; 0x10_0000];
    m[0x8_0000..0x8_0004].copy_from_slice(b"iBFT");
    let mut stale = table.to_vec();
    stale[0x190] ^= 0x55;
    m[0x9_0000..0x9_0000 + stale.len()].copy_from_slice(&stale);
    m[at..at + table.len()].copy_from_slice(table);
    m
}

#[test]
fn memory_image_scan_skips_decoys_and_finds_ipxes_table() {
    let s = Scratch::new("scan");
    let img = s.file(
        "mem.bin",
        &memory_image(&read_fixture("ibft-ipxe-dhcp-chap.bin"), 0x9_e620),
    );
    let o = run(&["ibft", &img]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!(
            "iBFT from {img} at physical 0x9e620 (memory image scan): 600 bytes"
        )),
        "{out}"
    );
    assert!(
        out.contains("target0: iqn.2025-01.test.rig:tgt-chap at 127.0.0.1:3260 lun 1"),
        "{out}"
    );
}

#[test]
fn memory_image_with_only_a_stale_copy_is_an_error() {
    let s = Scratch::new("stale");
    let mut m = memory_image(&read_fixture("ibft-ipxe-dhcp-nochap.bin"), 0x9_e620);
    m[0x9_e620..0x9_e624].copy_from_slice(b"xxxx");
    let img = s.file("mem.bin", &m);
    let o = run(&["ibft", &img]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no valid iBFT"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
}

#[test]
fn raw_table_with_a_wrong_checksum_is_refused_naming_the_checksum() {
    let s = Scratch::new("csum");
    let mut t = read_fixture("ibft-ipxe-dhcp-nochap.bin");
    t[0x190] ^= 1;
    let f = s.file("bad.bin", &t);
    let o = run(&["ibft", &f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("checksum"), "{}", stderr(&o));
}

#[test]
fn truncated_raw_table_is_refused() {
    let s = Scratch::new("trunc");
    let t = read_fixture("ibft-ipxe-dhcp-nochap.bin");
    let f = s.file("short.bin", &t[..300]);
    let o = run(&["ibft", "--json", &f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
}

#[test]
fn missing_file_names_the_path() {
    let o = run(&["ibft", "/nonexistent/ibft.bin"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/ibft.bin"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn rewrite_points_the_boot_target_at_a_local_portal_and_keeps_the_rest() {
    let s = Scratch::new("rewrite");
    let out = s.0.join("local.bin");
    let out = out.to_str().expect("utf8");
    let f = fixture("ibft-ipxe-dhcp-mutualchap.bin");
    let o = run(&[
        "ibft",
        "--rewrite",
        "127.0.0.1:3999",
        "--output",
        out,
        f.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["ibft", "--json", "--show-secrets", out]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = stdout(&o);
    for want in [
        r#""ip": "127.0.0.1""#,
        r#""port": 3999"#,
        r#""name": "iqn.2025-01.test.rig:tgt-mutual""#,
        r#""chap_secret": "rigin-secret-12""#,
        r#""reverse_chap_secret": "rigout-secret-12""#,
        r#""name": "iqn.2025-01.test.rig:initiator-ipxe""#,
        r#""mac": "52:54:00:12:34:56""#,
    ] {
        assert!(j.contains(want), "missing {want} in {j}");
    }
    assert!(!j.contains("127.0.0.1\",\n      \"port\": 3260"), "{j}");
}

#[test]
fn part_shows_an_mbr_freebsd_slice() {
    let s = Scratch::new("part");
    let mut d = vec![0u8; 1024 * 512];
    let e = 0x1be;
    d[e] = 0x80;
    d[e + 4] = 0xa5;
    d[e + 8..e + 12].copy_from_slice(&63u32.to_le_bytes());
    d[e + 12..e + 16].copy_from_slice(&900u32.to_le_bytes());
    d[510] = 0x55;
    d[511] = 0xaa;
    let f = s.file("disk.img", &d);
    let o = run(&["part", &f]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("MBR, 1 partition(s)"), "{out}");
    assert!(
        out.contains("\n  s1       freebsd                  63          900    450K  [active]\n"),
        "{out}"
    );
    let o = run(&["part", &s.file("blank.img", &[0u8; 4096])]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no partition table"), "{}", stderr(&o));
}

#[test]
fn boot_with_nothing_listening_is_not_usable() {
    // A port that was free a moment ago: the connection is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let portal = format!("127.0.0.1:{port}");
    let o = run(&[
        "boot",
        "--portal",
        &portal,
        "--target",
        "iqn.2026-11.org.isboot:none",
        "--lun",
        "1",
        "--timeout",
        "20",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("isboot: logging in to {portal}\n")),
        "{out}"
    );
    // The transcript is output; why the disk is not usable is the error, on stderr, last.
    // Before it, the session's own errors (shown at every --debug level, as the kernel's at
    // net.isboot.debug=0) say what went wrong on the way.
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.last().is_some_and(|l| l.starts_with(&format!(
            "isbootctl: boot disk NOT usable: login to {portal} failed: "
        ))),
        "{err}"
    );
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l.starts_with("[error] isboot: ") && l.contains("connection refused")),
        "{err}"
    );
    assert!(!out.contains("NOT usable"), "{out}");
}

#[test]
fn boot_takes_the_target_from_the_table_and_flags_override_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let portal = format!("127.0.0.1:{port}");
    let f = fixture("ibft-ipxe-dhcp-mutualchap.bin");
    let o = run(&[
        "boot",
        "--ibft",
        f.to_str().expect("utf8"),
        "--portal",
        &portal,
        "--timeout",
        "20",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("isboot: initiator iqn.2025-01.test.rig:initiator-ipxe\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "isboot: target iqn.2025-01.test.rig:tgt-mutual at {portal} LUN 1, auth mutual CHAP\n"
        )),
        "{out}"
    );
    assert!(out.contains(", flags --portal\n"), "{out}");
    assert!(
        !out.contains("secret-12") && !stderr(&o).contains("secret-12"),
        "{out}"
    );
}

/// The nochap table with target0's flags cleared (not valid, not boot-selected), checksum fixed.
fn table_without_a_usable_target() -> Vec<u8> {
    let mut t = read_fixture("ibft-ipxe-dhcp-nochap.bin");
    let flags = 0x180 + 5;
    let old = t[flags];
    t[flags] = 0;
    t[9] = t[9].wrapping_add(old);
    t
}

#[test]
fn table_without_a_usable_target_decodes_but_names_why_it_cannot_boot() {
    let s = Scratch::new("nousable");
    let f = s.file("t.bin", &table_without_a_usable_target());
    let o = run(&["ibft", &f]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("[not valid]"), "{out}");
    assert!(
        out.contains(
            "boot: none: iBFT has no usable target; iBFT target0 skipped: not marked valid"
        ),
        "{out}"
    );
    let o = run(&["ibft", "--json", &f]);
    assert!(stdout(&o).contains("\"boot\": null"), "{}", stdout(&o));
    let o = run(&["boot", "--ibft", &f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no usable target"), "{}", stderr(&o));
}

/// The bad-input table: arguments, exit status, and the exact first line on stderr. `{P}` is
/// replaced by the port of a listener that must never see a connection: every argument is
/// checked before anything is contacted. 64 is EX_USAGE (the command's synopsis follows the
/// message); 1 is a failure with valid arguments (nothing on stdout either way).
const BAD_INPUT: &[(&[&str], i32, &str)] = &[
    (&[], 64, "no command given"),
    (&["frobnicate"], 64, "unknown command \"frobnicate\""),
    (&["--frob"], 64, "invalid option '--frob'"),
    (&["help", "frob"], 64, "no help on \"frob\""),
    (&["ibft", "--jsn"], 64, "invalid option '--jsn'"),
    (&["ibft", "-x"], 64, "invalid option '-x'"),
    (&["ibft", "a", "b"], 64, "unexpected argument \"b\": at most one FILE"),
    (&["ibft", "--output"], 64, "missing argument for option '--output'"),
    (&["ibft", "--rewrite", "127.0.0.1:{P}"], 64, "--rewrite and --output go together"),
    (&["ibft", "--rewrite", "127.0.0.1:0", "--output", "o"], 64,
     "--rewrite: portal \"127.0.0.1:0\": the port must be 1-65535"),
    (&["ibft", "--rewrite", "127.0.0.1:{P}", "--output", "o", "--json"], 64,
     "--rewrite prints the new table as text: no --json or --show-secrets"),
    (&["part"], 64, "part needs an IMAGE"),
    (&["part", "a", "b"], 64, "unexpected argument \"b\": one IMAGE"),
    (&["part", "--block-size", "1000", "x"], 64, "--block-size 1000: not a power of two"),
    (&["part", "--block-size", "256", "x"], 64,
     "--block-size \"256\": expected a number from 512 to 65536"),
    (&["boot", "--portal", "127.0.0.1:0"], 64,
     "--portal: portal \"127.0.0.1:0\": the port must be 1-65535"),
    (&["boot", "--portal", "127.0.0.1:65536"], 64,
     "--portal: portal \"127.0.0.1:65536\": the port must be 1-65535"),
    (&["boot", "--portal", "127.0.0.1:x"], 64,
     "--portal: portal \"127.0.0.1:x\": the port is not a number"),
    (&["boot", "--portal", "[::1"], 64,
     "--portal: portal \"[::1\": missing ']' after the IPv6 address"),
    (&["boot", "--portal", "::1:3260:"], 64,
     "--portal: portal \"::1:3260:\": an IPv6 address with a port is written [ADDRESS]:PORT"),
    (&["boot", "--portal", "300.0.0.1"], 64, "--portal: portal \"300.0.0.1\": not an IPv4 address"),
    (&["boot", "--portal", "bad_host"], 64,
     "--portal: portal \"bad_host\": not an IP address or host name"),
    (&["boot", "--portal", "127.0.0.1:{P}", "--target", "IQN.2026-01.org.example:x"], 64,
     "--target: \"IQN.2026-01.org.example:x\" is not an iSCSI name: expected iqn., eui. or naa."),
    (&["boot", "--portal", "127.0.0.1:{P}", "--target", "iqn.2026-01.org.Example:x"], 64,
     "--target: \"iqn.2026-01.org.Example:x\" is not an iSCSI name: iSCSI names are lowercase (RFC 3722)"),
    (&["boot", "--portal", "127.0.0.1:{P}", "--target", "iqn.2026-13.org.example:x"], 64,
     "--target: \"iqn.2026-13.org.example:x\" is not an iSCSI name: iqn. is followed by the year and month, iqn.YYYY-MM."),
    (&["boot", "--portal", "127.0.0.1:{P}", "--target", "iqn.2026-01.:x"], 64,
     "--target: \"iqn.2026-01.:x\" is not an iSCSI name: no naming authority (reversed domain name) after the date"),
    (&["boot", "--portal", "127.0.0.1:{P}", "--target", "eui.0123"], 64,
     "--target: \"eui.0123\" is not an iSCSI name: eui. takes 16 hex digits"),
    (&["boot", "--portal", "127.0.0.1:{P}", "--target", "naa.0123456789abcdef01"], 64,
     "--target: \"naa.0123456789abcdef01\" is not an iSCSI name: naa. takes 16 or 32 hex digits"),
    (&["boot", "--portal", "127.0.0.1:{P}", "--target", "iqn.2026-01.org.example:a\tb"], 64,
     "--target: \"iqn.2026-01.org.example:a\\tb\" is not an iSCSI name: character '\\t' is not allowed"),
    (&["boot", "--initiator", "host1"], 64,
     "--initiator: \"host1\" is not an iSCSI name: expected iqn., eui. or naa."),
    (&["boot", "--lun", "x"], 64, "--lun \"x\": expected a number from 0 to 16383"),
    (&["boot", "--lun", "16384"], 64, "--lun \"16384\": expected a number from 0 to 16383"),
    (&["boot", "--lun", "-1"], 64, "--lun \"-1\": expected a number from 0 to 16383"),
    (&["boot", "--chap", "no-colon"], 64, "--chap wants NAME:SECRET"),
    (&["boot", "--chap", ":secret-of-12"], 64, "--chap: empty CHAP name"),
    (&["boot", "--chap", "u:eleven-byte"], 64,
     "--chap: the CHAP secret is 11 bytes; RFC 7143 wants at least 12 (96 bits) without IPsec"),
    (&["boot", "--mutual", "t:short"], 64,
     "--mutual: the CHAP secret is 5 bytes; RFC 7143 wants at least 12 (96 bits) without IPsec"),
    (&["boot", "--chap", "u:same-secret-12", "--mutual", "t:same-secret-12"], 64,
     "--mutual: the target's secret must differ from the initiator's (RFC 7143 section 9.2.1)"),
    (&["boot", "--portal", "127.0.0.1:{P}", "--target", "iqn.2026-01.org.example:x",
       "--mutual", "t:target-secret-1"], 64,
     "--mutual needs CHAP credentials too (--chap or the table's)"),
    (&["boot", "--portal", "127.0.0.1:{P}"], 1, "{NOIBFT}"),
    (&["boot", "--timeout", "0"], 64, "--timeout \"0\": expected a number from 1 to 3600"),
    (&["boot", "--timeout", "3601"], 64, "--timeout \"3601\": expected a number from 1 to 3600"),
    (&["boot", "--debug", "4"], 64, "--debug \"4\": expected a number from 0 to 3"),
    (&["boot", "extra"], 64, "unexpected argument \"extra\""),
    (&["boot", "--root-path", "nfs:/x"], 64,
     "--root-path \"nfs:/x\": not an iSCSI root path (iscsi:SERVER:PROTOCOL:PORT:LUN:TARGET)"),
    (&["boot", "--root-path", "iscsi:127.0.0.1:::g:iqn.2026-01.org.example:x"], 64,
     "--root-path \"iscsi:127.0.0.1:::g:iqn.2026-01.org.example:x\": LUN \"g\": hexadecimal levels of 1-4 digits joined by '-' (RFC 4173), e.g. 1, a, 0-1"),
    (&["boot", "--root-path", "iscsi:127.0.0.1::0::iqn.2026-01.org.example:x"], 64,
     "--root-path \"iscsi:127.0.0.1::0::iqn.2026-01.org.example:x\": port \"0\": outside 1-65535 (leave it empty for 3260)"),
    (&["boot", "--root-path", "iscsi:127.0.0.1::{P}::iqn.2026-01.org.example:x", "--lun", "1"], 64,
     "--root-path names the target: no --portal, --target or --lun with it"),
    (&["boot", "--ibft", "x", "--root-path", "iscsi:127.0.0.1::{P}::iqn.2026-01.org.example:x"], 64,
     "--ibft, --root-path and --loader-conf are three sources: give one"),
    (&["boot", "--loader-conf", "/dev/zero"], 1, "/dev/zero: not a regular file"),
    (&["loader-conf"], 64, "loader-conf needs --initiator NAME"),
    (&["loader-conf", "--initiator", "iqn.2026-01.org.example:h", "--portal", "127.0.0.1"], 64,
     "no target: give --root-path, or --portal and --target"),
    (&["loader-conf", "--portal", "san.example"], 64,
     "--portal \"san.example\": the kernel has no resolver; give an address"),
    (&["loader-conf", "--initiator", "host1"], 64,
     "--initiator: \"host1\" is not an iSCSI name: expected iqn., eui. or naa."),
    (&["loader-conf", "--nic", "em0;reboot"], 64,
     "--nic \"em0;reboot\": an interface name (em0) or a unicast MAC address (58:9c:fc:0b:00:01)"),
    (&["loader-conf", "--nic", "01:00:5e:00:00:01"], 64,
     "--nic \"01:00:5e:00:00:01\": an interface name (em0) or a unicast MAC address (58:9c:fc:0b:00:01)"),
    (&["loader-conf", "--address", "192.0.2.20"], 64,
     "--address \"192.0.2.20\": expected ADDRESS/PREFIX, e.g. 192.0.2.20/24"),
    (&["loader-conf", "--address", "192.0.2.20/33"], 64,
     "--address \"192.0.2.20/33\": the prefix length is 0-32"),
    (&["loader-conf", "--gateway", "gw"], 64, "--gateway \"gw\": not an IPv4 or IPv6 address"),
    (&["loader-conf", "--vlan", "0"], 64, "--vlan \"0\": expected a number from 1 to 4094"),
    (&["loader-conf", "--source", "dhcp"], 64, "--source \"dhcp\": expected auto, ibft or loader"),
    (&["loader-conf", "--mountfrom", "rootfs"], 64,
     "--mountfrom \"rootfs\": expected FSTYPE:DEVICE, e.g. ufs:/dev/gpt/rootfs"),
    (&["loader-conf", "--initiator", "iqn.2026-01.org.example:h", "--mutual", "t:target-secret-1",
       "--root-path", "iscsi:192.0.2.1::::iqn.2026-01.org.example:x"], 64, "--mutual needs --chap"),
    (&["loader-conf", "--initiator", "iqn.2026-01.org.example:h", "--nic", "em0",
       "--root-path", "iscsi:192.0.2.1::::iqn.2026-01.org.example:x"], 64,
     "--nic needs --address ADDRESS/PREFIX"),
    (&["loader-conf", "--initiator", "iqn.2026-01.org.example:h", "--gateway", "192.0.2.1",
       "--root-path", "iscsi:192.0.2.1::::iqn.2026-01.org.example:x"], 64,
     "--gateway and --vlan describe the --nic: give --nic"),
    (&["loader-conf", "--initiator", "iqn.2026-01.org.example:h",
       "--root-path", "iscsi:[2001:db8::1]::::iqn.2026-01.org.example:x"], 64,
     "an IPv6 target needs --nic and --address: the loader's boot.netif.* are IPv4 only"),
    (&["loader-conf", "--initiator", "iqn.2026-01.org.example:h", "--nic", "em0",
       "--address", "2001:db8::2/64", "--root-path", "iscsi:192.0.2.1::::iqn.2026-01.org.example:x"], 64,
     "net.isboot.root_path names a target of another address family than net.isboot.nic_address"),
    (&["ibft", "/dev/zero"], 1, "/dev/zero: not a regular file"),
    (&["ibft", "/"], 1, "/: not a regular file"),
    (&["part", "/dev/zero"], 1, "/dev/zero: not a regular file"),
    (&["boot", "--ibft", "/dev/zero", "--portal", "127.0.0.1:{P}"], 1,
     "/dev/zero: not a regular file"),
    (&["ibft", "/nonexistent/ibft.bin"], 1,
     "/nonexistent/ibft.bin: No such file or directory (os error 2)"),
];

#[test]
fn bad_input_table() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port().to_string();
    let mut failures = Vec::new();
    for (args, code, message) in BAD_INPUT {
        let args: Vec<String> = args.iter().map(|a| a.replace("{P}", &port)).collect();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&argv);
        let err = stderr(&o);
        let first = err.lines().next().unwrap_or("");
        let want_first = if *message == "{NOIBFT}" {
            // Without --target the running system's table is needed; this machine has none
            // (the exact places looked at differ between Linux and FreeBSD).
            None
        } else {
            Some(format!("isbootctl: {message}"))
        };
        let usage_line = err.lines().nth(1).unwrap_or("");
        let ok = o.status.code() == Some(*code)
            && want_first.as_deref().is_none_or(|w| first == w)
            && (want_first.is_some() || first.starts_with("isbootctl: "))
            && stdout(&o).is_empty()
            && (*code != 64 || usage_line.starts_with("usage: isbootctl "));
        if !ok {
            failures.push(format!(
                "{args:?}: exit {:?} (want {code}), stderr {err:?}, stdout {:?}",
                o.status.code(),
                stdout(&o)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        listener.accept().is_err(),
        "a bad command line connected to the portal"
    );
}

#[test]
fn usage_errors_show_the_synopsis_of_their_command_only() {
    let o = run(&["part", "--block-size", "3"]);
    assert_eq!(o.status.code(), Some(64));
    assert_eq!(
        stderr(&o),
        "isbootctl: --block-size \"3\": expected a number from 512 to 65536\n\
         usage: isbootctl part [--block-size N] IMAGE\n"
    );
}

#[test]
fn help_and_version_go_to_stdout_and_succeed() {
    for (args, first) in [
        (vec!["--help"], "usage: isbootctl ibft [--json]"),
        (vec!["help"], "usage: isbootctl ibft [--json]"),
        (vec!["-h"], "usage: isbootctl ibft [--json]"),
        (vec!["ibft", "--help"], "usage: isbootctl ibft [--json]"),
        (vec!["help", "ibft"], "usage: isbootctl ibft [--json]"),
        (
            vec!["part", "--help"],
            "usage: isbootctl part [--block-size N] IMAGE",
        ),
        (
            vec!["part", "-h"],
            "usage: isbootctl part [--block-size N] IMAGE",
        ),
        (
            vec!["boot", "--help"],
            "usage: isbootctl boot [--ibft FILE]",
        ),
        (
            vec!["boot", "--lun", "1", "--help"],
            "usage: isbootctl boot [--ibft FILE]",
        ),
    ] {
        let o = run(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).starts_with(first), "{args:?}: {}", stdout(&o));
        assert!(stderr(&o).is_empty(), "{args:?}");
    }
    let full = stdout(&run(&["--help"]));
    assert!(full.contains("64 usage error"), "{full}");
    let o = run(&["--version"]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o),
        format!("isbootctl {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(stdout(&run(&["-V"])), stdout(&o));
}

#[test]
fn ipv6_portals_are_accepted() {
    // Nothing listens on the port: the attempt shows that the portal was taken as given.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let o = run(&[
        "boot",
        "--portal",
        &format!("[::1]:{port}"),
        "--target",
        "iqn.2026-11.org.isboot:none",
        "--timeout",
        "5",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("isboot: logging in to [::1]:{port}\n")),
        "{}",
        stdout(&o)
    );
}

/// A table whose initiator name carries an escape sequence and a newline.
#[test]
fn control_characters_from_the_table_are_escaped_in_text() {
    let mut t = read_fixture("ibft-ipxe-dhcp-nochap.bin");
    let name = b"iqn.2025-01.test.rig:initiator-ipxe";
    let at = t
        .windows(name.len())
        .position(|w| w == name)
        .expect("initiator name in the fixture");
    t[at + 21] = 0x1b; // "iqn.2025-01.test.rig:" then ESC
    t[at + 22] = b'\n';
    let sum = t.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    t[9] = t[9].wrapping_sub(sum);
    let s = Scratch::new("escape");
    let f = s.file("ibft.bin", &t);
    let o = run(&["ibft", &f]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("initiator: iqn.2025-01.test.rig:\\x1b\\x0aitiator-ipxe\n"),
        "{out}"
    );
    assert!(!out.contains('\u{1b}'), "{out:?}");
    let j = stdout(&run(&["ibft", "--json", &f]));
    assert!(
        j.contains(r#""name": "iqn.2025-01.test.rig:\u001b\nitiator-ipxe""#),
        "{j}"
    );
}

const LOADER_CONF_ARGS: [&str; 20] = [
    "loader-conf",
    "--portal",
    "192.0.2.10",
    "--target",
    "iqn.2026-01.org.example:host1-root",
    "--lun",
    "10",
    "--initiator",
    "iqn.2026-01.org.example:host1",
    "--chap",
    "host1:initiator-s3cr",
    "--mutual",
    "target1:target-s3cret1",
    "--nic",
    "58:9c:fc:0b:00:01",
    "--address",
    "192.0.2.20/24",
    "--gateway",
    "192.0.2.1",
    "--bhyveload",
];

#[test]
fn loader_conf_writes_the_tunables_with_the_lun_in_hexadecimal() {
    let mut args = LOADER_CONF_ARGS[..19].to_vec();
    args.extend(["--mountfrom", "ufs:/dev/gpt/rootfs"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "# isboot(4): root file system on iscsi:192.0.2.10::3260:a:iqn.2026-01.org.example:host1-root
# CHAP secrets below: keep this file readable by root only (chmod 600)
isboot_load=\"YES\"
net.isboot.root_path=\"iscsi:192.0.2.10::3260:a:iqn.2026-01.org.example:host1-root\"
net.isboot.initiator_name=\"iqn.2026-01.org.example:host1\"
net.isboot.chap_name=\"host1\"
net.isboot.chap_secret=\"initiator-s3cr\"
net.isboot.reverse_chap_name=\"target1\"
net.isboot.reverse_chap_secret=\"target-s3cret1\"
net.isboot.nic_mac=\"58:9c:fc:0b:00:01\"
net.isboot.nic_address=\"192.0.2.20\"
net.isboot.nic_prefix=\"24\"
net.isboot.nic_gateway=\"192.0.2.1\"
vfs.root.mountfrom=\"ufs:/dev/gpt/rootfs\"
"
    );
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    let o = run(&LOADER_CONF_ARGS);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(
            "-e net.isboot.root_path=iscsi:192.0.2.10::3260:a:iqn.2026-01.org.example:host1-root -e "
        ),
        "{}",
        stdout(&o)
    );
    assert_eq!(stdout(&o).lines().count(), 1);
}

#[test]
fn boot_reads_what_loader_conf_wrote() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let portal = format!("127.0.0.1:{port}");
    let mut args = LOADER_CONF_ARGS[..19].to_vec();
    args[2] = &portal;
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = Scratch::new("loaderconf");
    let conf = dir.file("loader.conf", &o.stdout);
    let o = run(&["boot", "--loader-conf", &conf, "--timeout", "5"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "isboot: boot parameters from {conf} (NIC from net.isboot.nic_*)\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "isboot: target iqn.2026-01.org.example:host1-root at {portal} LUN 10, auth mutual CHAP\n"
        )),
        "{out}"
    );
    assert!(
        !out.contains("s3cr") && !stderr(&o).contains("s3cr"),
        "{out}"
    );
    // The kernel's checks apply: a broken line names the variable.
    let bad = dir.file(
        "bad.conf",
        b"net.isboot.root_path=\"iscsi:127.0.0.1::::iqn.2026-01.org.example:x\"\n\
          net.isboot.initiator_name=\"iqn.2026-01.org.example:h\"\n\
          net.isboot.chap_name=\"h\"\n",
    );
    let o = run(&["boot", "--loader-conf", &bad]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!("isbootctl: {bad}: net.isboot.chap_name is set without net.isboot.chap_secret\n")
    );
}

#[test]
fn boot_takes_an_rfc_4173_root_path() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let rp = format!("iscsi:[::1]::{port}:1f:iqn.2026-01.org.example:x");
    let o = run(&["boot", "--root-path", &rp, "--timeout", "5"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "isboot: boot parameters from root path iscsi:[::1]::{port}:1f:iqn.2026-01.org.example:x\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "isboot: target iqn.2026-01.org.example:x at [::1]:{port} LUN 31, auth none\n"
        )),
        "{out}"
    );
}
