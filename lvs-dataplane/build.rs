//! Builds the AF_XDP backend's XDP program (`bpf/lvs_xdp.c`) with clang into `OUT_DIR`, where
//! `src/afxdp.rs` embeds it. Without clang (or with the `afxdp` feature off) an empty object
//! is written with the reason beside it, and `AfXdp::open` reports that reason instead.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bpf/lvs_xdp.c");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let (obj, why) = (out.join("lvs_xdp.o"), out.join("lvs_xdp.why"));
    let feature = std::env::var_os("CARGO_FEATURE_AFXDP").is_some();
    let reason = if feature { compile(&obj).err() } else { Some("built without the `afxdp` feature".to_string()) };
    match reason {
        None => std::fs::write(&why, "").expect("write to OUT_DIR"),
        Some(r) => {
            if feature {
                println!("cargo:warning=the AF_XDP program was not built: {r}");
            }
            std::fs::write(&obj, []).expect("write to OUT_DIR");
            std::fs::write(&why, r).expect("write to OUT_DIR");
        }
    }
}

/// `clang -O2 -g -target bpf`, with the multiarch include directory for `<asm/types.h>`
/// (Debian puts it under `/usr/include/<triplet>`).
fn compile(obj: &std::path::Path) -> Result<(), String> {
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let triplet = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        other => return Err(format!("no multiarch include directory known for {other}")),
    };
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-target", "bpf"])
        .arg(format!("-I/usr/include/{triplet}"))
        .args(["-c", "bpf/lvs_xdp.c", "-o"])
        .arg(obj)
        .status()
        .map_err(|e| format!("{clang}: {e} (install clang and libbpf-dev)"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{clang} failed ({status}); it needs libbpf-dev's <bpf/bpf_helpers.h>"))
    }
}
