//! `oort plugin new|check`: the plugin author's commands. `new` writes a
//! project that builds to a component and a package in one command;
//! `check` runs the server's install checks offline and prints a report.
//! Both work without a server. See docs/plugins/.

mod check;
mod new;

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    verb: PluginVerb,
}

#[derive(Subcommand)]
enum PluginVerb {
    /// Write a new plugin project (Rust, Python, JavaScript or C) that builds to a package.
    New(new::NewArgs),
    /// Check a plugin package (.zip) or component (.wasm) as an install would, without a server.
    Check(check::CheckArgs),
}

pub fn main(a: PluginArgs) -> anyhow::Result<()> {
    match a.verb {
        PluginVerb::New(n) => new::run(n),
        PluginVerb::Check(c) => check::run(c),
    }
}
