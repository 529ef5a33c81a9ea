// SPDX-License-Identifier: BSD-2-Clause
//! Runs bindgen over `wrapper.h` with the same preprocessor view of the kernel headers that the C
//! helpers are compiled with, so Rust and C agree on every layout.
//!
//! Inputs (environment):
//! - `ISBOOT_KMOD_CFLAGS`: the complete clang flag list (include directories, `-D`, `-include`,
//!   `--target`), whitespace-separated. The Makefile and tests/kmod-check.sh set it so that bindgen
//!   sees exactly what the C compiler sees.
//! - otherwise `SYSDIR` (default `/usr/src/sys`): a FreeBSD source tree, used the way bsd.kmod.mk
//!   uses it (`machine`/`x86` include links, generated option headers).
//! - `ISBOOT_FREEBSD_VERSION`: overrides `__FreeBSD_version` (cross builds whose compiler predefines
//!   another value).
//!
//! The item lists to generate come from `allowlist.txt` and `allowlist-*.txt`: one `fn`, `type` or
//! `var` regex per line, so each part of the glue names what it uses in its own file.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let here =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for v in ["ISBOOT_KMOD_CFLAGS", "SYSDIR", "ISBOOT_FREEBSD_VERSION"] {
        println!("cargo:rerun-if-env-changed={v}");
    }

    let mut flags: Vec<String> = match env::var("ISBOOT_KMOD_CFLAGS") {
        Ok(f) if !f.trim().is_empty() => f.split_whitespace().map(str::to_owned).collect(),
        _ => sysdir_flags(&out),
    };
    if let Ok(v) = env::var("ISBOOT_FREEBSD_VERSION") {
        flags.push("-U__FreeBSD_version".into());
        flags.push(format!("-D__FreeBSD_version={v}"));
    }
    // bindgen reads declarations only; code generation options of the C build do not apply.
    flags.retain(|f| !f.starts_with("-mcpu=") && !f.starts_with("-fsanitize") && f != "-g0");

    let mut builder = bindgen::Builder::default()
        .header(here.join("wrapper.h").to_string_lossy().into_owned())
        .clang_arg(format!("-I{}", here.display()))
        .clang_args(&flags)
        .use_core()
        .ctypes_prefix("core::ffi")
        .layout_tests(false)
        .derive_debug(false)
        .derive_default(true)
        .generate_comments(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .size_t_is_usize(true)
        .merge_extern_blocks(true)
        .sort_semantically(true)
        // Anonymous unions and bitfields in kernel structs stay opaque unless a list names them.
        .array_pointers_in_arguments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));

    let mut lists: Vec<PathBuf> = fs::read_dir(&here)
        .expect("read bindings directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("allowlist") && name.ends_with(".txt")
        })
        .collect();
    lists.sort();
    for list in &lists {
        println!("cargo:rerun-if-changed={}", list.display());
        builder = apply_allowlist(builder, list);
    }
    for f in ["wrapper.h", "helpers.h", "helpers_net_cam.h"] {
        println!("cargo:rerun-if-changed={}", here.join(f).display());
    }

    let bindings = builder.generate().unwrap_or_else(|e| {
        panic!("bindgen failed on wrapper.h with flags {flags:?}: {e}");
    });
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");
}

fn apply_allowlist(mut b: bindgen::Builder, list: &Path) -> bindgen::Builder {
    let text = fs::read_to_string(list).unwrap_or_else(|e| panic!("{}: {e}", list.display()));
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (kind, pat) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let pat = pat.trim();
        b = match kind {
            "fn" => b.allowlist_function(pat),
            "type" => b.allowlist_type(pat),
            "var" => b.allowlist_var(pat),
            "opaque" => b.opaque_type(pat),
            "block" => b.blocklist_item(pat),
            _ => panic!(
                "{}:{}: expected fn/type/var/opaque/block, got {line:?}",
                list.display(),
                n + 1
            ),
        };
    }
    b
}

/// Flags for a FreeBSD source tree, mirroring bsd.kmod.mk: `-nostdinc`, the `machine` and `x86`
/// include links, option headers of a GENERIC kernel, and the Concurrency Kit include directory.
fn sysdir_flags(out: &Path) -> Vec<String> {
    let sysdir = PathBuf::from(env::var("SYSDIR").unwrap_or_else(|_| "/usr/src/sys".into()));
    if !sysdir.join("kern").is_dir() {
        panic!(
            "no FreeBSD kernel source tree at {} (set SYSDIR, or ISBOOT_KMOD_CFLAGS for a prepared tree)",
            sysdir.display()
        );
    }
    let inc = out.join("kmod-include");
    fs::create_dir_all(&inc).expect("create include dir");
    let arch = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") | Err(_) => "amd64",
        Ok("aarch64") => "arm64",
        Ok(other) => panic!("unsupported kernel architecture {other}"),
    };
    link(&sysdir.join(arch).join("include"), &inc.join("machine"));
    if arch == "amd64" {
        link(&sysdir.join("x86").join("include"), &inc.join("x86"));
    }
    fs::write(inc.join("opt_inet.h"), "#define INET 1\n").expect("write opt_inet.h");
    fs::write(inc.join("opt_inet6.h"), "#define INET6 1\n").expect("write opt_inet6.h");
    for f in [
        "opt_cam.h",
        "opt_scsi.h",
        "opt_acpi.h",
        "device_if.h",
        "bus_if.h",
    ] {
        fs::write(inc.join(f), "").expect("write option header");
    }
    let s = |p: &Path| format!("-I{}", p.display());
    vec![
        "-nostdinc".into(),
        s(&inc),
        s(&sysdir),
        s(&sysdir.join("contrib").join("ck").join("include")),
        "-D_KERNEL".into(),
        "-DKLD_MODULE".into(),
        "-DVIMAGE".into(),
        "-ffreestanding".into(),
    ]
}

fn link(target: &Path, name: &Path) {
    if fs::symlink_metadata(name).is_ok() {
        fs::remove_file(name).expect("replace include link");
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, name).expect("create include link");
    #[cfg(not(unix))]
    panic!(
        "include links need a unix host ({} -> {})",
        name.display(),
        target.display()
    );
}
