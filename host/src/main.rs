fn main() -> anyhow::Result<()> {
    oort::cli::main()
}
