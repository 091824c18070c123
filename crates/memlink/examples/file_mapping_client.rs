//! The second seed's client: opens the server's region read-only, maps the
//! same view and prints the message, a wide string as the seed's
//! `wprintf(L"%s", (PWSTR)pView)` reads it: UTF-16LE up to a two-byte NUL.
//! It reads what the seed's own server writes as well as what
//! `file_mapping_server` writes.

use memlink::{Access, Region};

const MAP_NAME: &str = "Local\\SampleMap";
const VIEW_OFFSET: u64 = 0;
const VIEW_SIZE: u64 = 1024;

fn main() {
    let region = match Region::open(MAP_NAME, Access::ReadOnly) {
        Ok(region) => region,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!("The file mapping ({MAP_NAME}) is opened");
    let view = match region.map(VIEW_OFFSET..VIEW_OFFSET + VIEW_SIZE) {
        Ok(view) => view,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!("The file view is mapped");
    let units: Vec<u16> = view
        .to_vec()
        .chunks_exact(2)
        .map(|unit| u16::from_le_bytes([unit[0], unit[1]]))
        .take_while(|&unit| unit != 0)
        .collect();
    println!(
        "Read from the file mapping:\n\"{}\"",
        String::from_utf16_lossy(&units)
    );
}
