//! Prints the compress ratios each compressor achieves on generated streams.
//!
//! `cargo run --release --example ratios -- [MiB] [c ...]`

#[path = "../tests/common/ratios.rs"]
#[allow(dead_code)]
mod ratios;

use dgenfs::{ContentSpec, Generator};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(16);
    let mut ratios_wanted: Vec<f64> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    if ratios_wanted.is_empty() {
        ratios_wanted = vec![1.0, 1.5, 2.0, 3.0, 4.0, 8.0, 16.0, 32.0, 64.0];
    }
    println!("| c | compressor | whole | 128 KiB blocks | 4 KiB blocks |");
    println!("|---|---|---|---|---|");
    for c in ratios_wanted {
        let spec = ContentSpec {
            compress: c,
            ..ContentSpec::with_seed(1)
        };
        let mut data = vec![0u8; mib << 20];
        Generator::new(&spec)
            .expect("valid spec")
            .fill_par(0, &mut data);
        for comp in ratios::ALL {
            let cells: Vec<String> = ratios::BLOCKS
                .iter()
                .map(|&b| format!("{:.3}", comp.ratio(&data, b)))
                .collect();
            println!("| {c} | {} | {} |", comp.name(), cells.join(" | "));
        }
    }
}
