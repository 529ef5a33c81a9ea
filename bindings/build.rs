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
        .layout_tests(true)
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

    // A second view with C-style names (`struct_foo`, `union_foo`, typedef names as they are)
    // tells the layout check how C spells each type.
    let c_named = builder
        .clone()
        .c_naming(true)
        .generate()
        .unwrap_or_else(|e| {
            panic!("bindgen (C names) failed on wrapper.h with flags {flags:?}: {e}");
        });
    let bindings = builder.generate().unwrap_or_else(|e| {
        panic!("bindgen failed on wrapper.h with flags {flags:?}: {e}");
    });
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");

    // The same layouts, as the C compiler must see them: tests/kmod-check.sh compiles this file
    // with the module's C flags, so bindgen's libclang and the C compiler cannot disagree on a
    // size, alignment or field offset the Rust side relies on.
    let c_named = c_named.to_string();
    fs::write(out.join("bindings-c-names.rs"), &c_named).expect("write bindings-c-names.rs");
    let check = layout_check_c(&c_named);
    fs::write(out.join("layout-check.c"), &check).expect("write layout-check.c");
}

/// Rust keywords bindgen renames by appending `_` (a C field `type` becomes `type_`).
const RUST_KEYWORDS: &[&str] = &[
    "abstract", "alignof", "as", "async", "await", "become", "bool", "box", "break", "char",
    "const", "continue", "crate", "do", "dyn", "else", "enum", "extern", "f32", "f64", "false",
    "final", "fn", "for", "gen", "i128", "i16", "i32", "i64", "i8", "if", "impl", "in", "isize",
    "let", "loop", "macro", "match", "mod", "move", "mut", "offsetof", "override", "priv", "proc",
    "pub", "pure", "ref", "return", "self", "sizeof", "static", "str", "struct", "super", "trait",
    "true", "try", "type", "typeof", "u128", "u16", "u32", "u64", "u8", "unsafe", "unsized", "use",
    "usize", "virtual", "where", "while", "yield",
];

/// The C spelling of a name bindgen may have suffixed with `_` to dodge a Rust keyword.
fn c_name(name: &str) -> &str {
    match name.strip_suffix('_') {
        Some(base) if RUST_KEYWORDS.contains(&base) => base,
        _ => name,
    }
}

/// C11 static assertions for every size, alignment and field offset bindgen's layout tests
/// state (in `rust`, generated with C-style names). Types bindgen made up for anonymous members
/// are skipped: C has no name for them.
fn layout_check_c(rust: &str) -> String {
    // With c_naming, records are `struct_foo`/`union_foo`. An anonymous record behind a typedef
    // is named after the typedef and aliased by it (`pub type foo = struct_foo;`): C knows it
    // only as `foo`, which also works for a tag that has a same-named typedef.
    // Split at `;`, not at lines: without rustfmt, bindgen's output is one long line.
    let typedefs: std::collections::HashSet<&str> = rust
        .split(';')
        .filter_map(|stmt| {
            let stmt = &stmt[stmt.rfind("pub type ")? + "pub type ".len()..];
            let (alias, target) = stmt.split_once(" = ")?;
            let (alias, target) = (alias.trim(), target.trim());
            let tag = target
                .strip_prefix("struct_")
                .or_else(|| target.strip_prefix("union_"))?;
            (tag == alias).then_some(alias)
        })
        .collect();
    let c_type = |name: &str| -> Option<String> {
        if name.contains("_bindgen_ty_") || name.contains("__bindgen") {
            return None;
        }
        Some(
            match (name.strip_prefix("struct_"), name.strip_prefix("union_")) {
                (Some(tag), _) | (_, Some(tag)) if typedefs.contains(tag) => c_name(tag).to_owned(),
                (Some(tag), _) => format!("struct {}", c_name(tag)),
                (_, Some(tag)) => format!("union {}", c_name(tag)),
                _ => c_name(name).to_owned(),
            },
        )
    };
    let number = |s: &str| -> Option<u64> { s.trim().trim_end_matches("usize").parse().ok() };
    let mut out = String::from(
        "/* Generated by bindings/build.rs from bindgen's layout tests; compiled by tests/kmod-check.sh. */\n\
         #include <sys/types.h>\n#include <sys/stddef.h>\n#include \"wrapper.h\"\n",
    );
    let mut n = 0usize;
    // Each layout test is `["<label>"][<expr> - <value>usize];`, possibly over several lines;
    // without rustfmt (a minimal toolchain) bindgen leaves token spacing: `] ;`.
    let flat = rust.replace('\n', " ").replace("] ;", "];");
    for chunk in flat.split("];") {
        let Some(start) = chunk.rfind("[\"") else {
            continue;
        };
        let Some((label, expr)) = chunk[start + 2..].split_once("\"]") else {
            continue;
        };
        let Some(value) = expr.rsplit_once(" - ").and_then(|(_, v)| number(v)) else {
            continue;
        };
        if let Some(ty) = label.strip_prefix("Size of ") {
            if let Some(c) = c_type(ty) {
                out.push_str(&format!(
                    "_Static_assert(sizeof({c}) == {value}, \"size of {c}\");\n"
                ));
                n += 1;
            }
        } else if let Some(ty) = label.strip_prefix("Alignment of ") {
            if let Some(c) = c_type(ty) {
                out.push_str(&format!(
                    "_Static_assert(_Alignof({c}) == {value}, \"alignment of {c}\");\n"
                ));
                n += 1;
            }
        } else if let Some(path) = label.strip_prefix("Offset of field: ") {
            let Some((ty, field)) = path.split_once("::") else {
                continue;
            };
            if field.starts_with("__bindgen") || field.starts_with("_bitfield") {
                continue;
            }
            let field = c_name(field);
            if let Some(c) = c_type(ty) {
                out.push_str(&format!(
                    "_Static_assert(__builtin_offsetof({c}, {field}) == {value}, \"offset of {c}.{field}\");\n"
                ));
                n += 1;
            }
        }
    }
    out.push_str(&format!("/* {n} assertions */\n"));
    out
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
