//! Rebuilds the crate when anything under `assets/` changes. rust-embed embeds each file
//! with `include_bytes!`, which tracks the files it saw, but a file added to the folder
//! would otherwise be missed until something else changed.

fn main() {
    println!("cargo:rerun-if-changed=assets");
}
