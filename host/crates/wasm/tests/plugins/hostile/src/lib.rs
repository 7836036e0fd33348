#![feature(asm_experimental_arch)]
//! Hostile source for the isolation suite: `props.attack` picks the export
//! that misbehaves. `spin-validate`, `spin-open`, `spin-read`, `spin-close`
//! busy-loop in that export; `flood` writes 900 log lines (stdout,
//! stderr and `host.log`) per `read`; `grow` allocates without end in
//! `read`; `tables` grows its function table by 16,384 slots per `read`
//! (with `table.grow`: Rust has no other way to emit it, hence the inline
//! assembly, a nightly feature the test build enables with
//! `RUSTC_BOOTSTRAP`, and `--growable-table` in build.rs). Otherwise (and between attacks) it emits `{"n": 1}`, `{"n": 2}`...
use oort_plugin_sdk::{
    export_source, logging, prop, Context, Error, Message, PluginInfo, Props, ReadOutcome, Source,
};
use std::time::Duration;

struct Hostile {
    attack: String,
    n: u64,
    hoard: Vec<Vec<u8>>,
}

fn spin() -> ! {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// Grows the function table by `n` null slots; its old size, or -1 when
/// refused without a trap.
fn grow_table(n: i32) -> i32 {
    let r: i32;
    // SAFETY: `table.grow` of the module's own function table with null
    // references touches no memory and no existing slot.
    unsafe {
        core::arch::asm!(
            "ref.null_func",
            "local.get {n}",
            "table.grow __indirect_function_table",
            "local.set {r}",
            n = in(local) n,
            r = lateout(local) r,
        );
    }
    r
}

fn attack(props: &Props) -> Result<String, Error> {
    Ok(prop::<String>(props, "attack")?.unwrap_or_default())
}

impl Source for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo::new("hostile", "0.1.0").description("misbehaves in the export it is told to")
    }
    fn validate(props: &Props) -> Result<(), Error> {
        if attack(props)? == "spin-validate" {
            spin();
        }
        Ok(())
    }
    fn open(_: &Context, props: Props, _: Option<String>) -> Result<Self, Error> {
        let attack = attack(&props)?;
        if attack == "spin-open" {
            spin();
        }
        Ok(Hostile {
            attack,
            n: 0,
            hoard: Vec::new(),
        })
    }
    fn read(&mut self, _: u32, wait: Duration) -> Result<ReadOutcome, Error> {
        match self.attack.as_str() {
            "spin-read" => spin(),
            "flood" => {
                for i in 0..300 {
                    println!("flood line {i} from stdout");
                    eprintln!("flood line {i} from stderr");
                    logging::info(&format!("flood line {i} from host.log"));
                }
            }
            "tables" => {
                if grow_table(1 << 14) < 0 {
                    return Err(Error::internal("table.grow refused"));
                }
            }
            "grow" => {
                let mut v = vec![0u8; 1 << 20];
                v[4096] = 1;
                self.hoard.push(v);
            }
            _ => std::thread::sleep(wait.min(Duration::from_millis(5))),
        }
        self.n += 1;
        Ok(ReadOutcome::one(Message::new(format!(
            "{{\"n\":{}}}",
            self.n
        ))))
    }
    fn close(&mut self) -> Result<(), Error> {
        if self.attack == "spin-close" {
            spin();
        }
        Ok(())
    }
}
export_source!(Hostile);
