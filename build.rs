//! Release binaries store their DWARF sections zlib-compressed (the line
//! tables Rust's backtraces read, which stay in the binary beside the split
//! `runnel.dwp`): about a quarter of their size, and still read by
//! backtraces, gdb and addr2line.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let release = matches!(std::env::var("PROFILE").as_deref(), Ok("release"));
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if release && linux {
        println!("cargo:rustc-link-arg-bins=-Wl,--compress-debug-sections=zlib");
    }
}
