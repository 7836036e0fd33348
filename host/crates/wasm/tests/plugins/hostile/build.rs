// The `tables` attack grows the function table, which the linker makes
// fixed-size unless told otherwise.
fn main() {
    println!("cargo:rustc-link-arg=--growable-table");
}
