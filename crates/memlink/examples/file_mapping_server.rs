//! The second seed's server: creates a named region, maps a view at the
//! seed's offset, writes the seed's message into it as the seed does (a
//! wide string: UTF-16LE and a two-byte NUL) and holds the region until
//! Enter. The seed's own client, or `file_mapping_client`, or
//! `memlink read 'Local\SampleMap'` reads it.
//!
//! Run `cargo run -p memlink --example file_mapping_server`, then, in another terminal,
//! `cargo run -p memlink --example file_mapping_client`.

use memlink::Region;

const MAP_NAME: &str = "Local\\SampleMap";
const MAP_SIZE: u64 = 65536;
/// The seed's: MapViewOfFile needs an offset that is a multiple of the
/// allocation granularity (memlink would take any).
const VIEW_OFFSET: u64 = 0;
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
    // (wcslen(pszMessage) + 1) * sizeof(*pszMessage) bytes, as the seed
    // copies: its wchar_t text and NUL.
    let wide: Vec<u8> = MESSAGE
        .encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect();
    if let Err(e) = view.write_at(0, &wide) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    println!("This message is written to the view:\n\"{MESSAGE}\"");
    println!("Press ENTER to clean up and exit.");
    let _ = std::io::stdin().read_line(&mut String::new());
    // Dropping the view unmaps it; dropping the region closes the handle,
    // and with it the name once no other process holds it.
}
