//! The second seed's server: creates a named region, maps a view at an
//! offset, writes a message into it and holds the region until Enter.
//!
//! Run `cargo run --example file_mapping_server`, then, in another terminal,
//! `cargo run --example file_mapping_client`.

use memlink::Region;

const MAP_NAME: &str = "Local\\SampleMap";
const MAP_SIZE: u64 = 65536;
/// Any offset works: memlink aligns the OS mapping itself.
const VIEW_OFFSET: u64 = 100;
const VIEW_SIZE: u64 = 1024;
const MESSAGE: &str = "Message from the first process.";

fn main() {
    let region = match Region::create(MAP_NAME, MAP_SIZE) {
        Ok(region) => region,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!("The file mapping ({MAP_NAME}) is created");
    let mut view = match region.map_mut(VIEW_OFFSET..VIEW_OFFSET + VIEW_SIZE) {
        Ok(view) => view,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!("The file view is mapped");
    let mut text = MESSAGE.as_bytes().to_vec();
    text.push(0); // NUL-terminated, as the seed's C string is
    if let Err(e) = view.write_at(0, &text) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    println!("This message is written to the view:\n\"{MESSAGE}\"");
    println!("Press ENTER to clean up and exit.");
    let _ = std::io::stdin().read_line(&mut String::new());
    // Dropping the view unmaps it; dropping the region closes the handle,
    // and with it the name once no other process holds it.
}
