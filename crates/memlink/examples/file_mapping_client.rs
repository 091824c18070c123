//! The second seed's client: opens the server's region read-only, maps the
//! same view and prints the message.

use memlink::{Access, Region};

const MAP_NAME: &str = "Local\\SampleMap";
const VIEW_OFFSET: u64 = 100;
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
    let bytes = view.to_vec();
    let text = bytes.split(|&b| b == 0).next().unwrap_or_default();
    println!(
        "Read from the file mapping:\n\"{}\"",
        String::from_utf8_lossy(text)
    );
}
