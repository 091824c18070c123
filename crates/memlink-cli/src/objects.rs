//! `ls`, `info`, `rm` and `reap`: the commands about names rather than bytes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write;

use comfy_table::{presets, Attribute, Cell, CellAlignment, Color, Table};
use memlink::{Lifetime, ObjectInfo, Origin, State};
use serde::Serialize;

use crate::procs::{self, Process, Users};
use crate::units::{human_mode, human_size, human_size_exact};
use crate::{colour_on_stdout, failure, CmdResult};

#[derive(clap::Args)]
pub struct LsArgs {
    /// Also show what is hidden by default: foreign objects that cannot be
    /// opened (other users' private ones) and POSIX named semaphores
    /// (`sem.*`, which live beside shared memory in /dev/shm).
    #[arg(short, long)]
    all: bool,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct InfoArgs {
    /// The object's name.
    name: String,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// The names to remove.
    #[arg(required = true)]
    names: Vec<String>,
    /// Remove a memlink object even while live processes hold it: they keep
    /// their handles and memory, but nobody can open it by name again.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
pub struct ReapArgs {
    /// Only say what would be removed.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Print what was (or would be) removed as a JSON array.
    #[arg(long)]
    json: bool,
}

/// One object as `ls --json` and `info --json` print it.
#[derive(Serialize)]
struct ObjectJson {
    name: String,
    /// `region`, `mutex`, ...; `null` for a foreign object.
    kind: Option<&'static str>,
    /// `memlink`, `foreign`, or `unknown` when it cannot be told.
    origin: &'static str,
    size: u64,
    lifetime: &'static str,
    state: &'static str,
    /// A sync object's state in words: `unlocked`, `count 2 of 5`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    /// Octal permission bits, `"0600"`; `null` where the platform has none.
    mode: Option<String>,
    /// Where the object is in the file system (Linux: `/dev/shm/NAME`).
    path: Option<String>,
    /// The processes holding it; `null` where the platform does not tell.
    holders: Option<Vec<Process>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mapped_by: Option<Vec<Process>>,
}

/// An object with the processes found using it.
struct Described {
    info: ObjectInfo,
    path: Option<String>,
    holders: Vec<Process>,
    mapped_by: Vec<Process>,
}

impl Described {
    fn json(&self, with_maps: bool) -> ObjectJson {
        let info = &self.info;
        ObjectJson {
            name: info.name.clone(),
            kind: info.kind.map(|k| k.as_str()),
            origin: info.origin.as_str(),
            size: info.size,
            lifetime: info.lifetime.as_str(),
            state: info.state.as_str(),
            detail: info.detail.clone(),
            mode: info.mode.map(|m| format!("{m:04o}")),
            path: self.path.clone(),
            holders: info.holders_known.then(|| self.holders.clone()),
            mapped_by: (with_maps && info.holders_known).then(|| self.mapped_by.clone()),
        }
    }
}

/// Adds the processes using each object: the library's holders (handles),
/// and those with it open in `/proc` (for foreign objects, which hold no
/// memlink handle); with `maps`, also those with it mapped.
fn describe(infos: Vec<ObjectInfo>, maps: bool) -> Vec<Described> {
    let paths: HashSet<String> = infos.iter().filter_map(|i| i.path.clone()).collect();
    let users = procs::users(&paths, maps);
    let mut commands: HashMap<u32, Process> = HashMap::new();
    let mut process = |pid: u32| {
        commands
            .entry(pid)
            .or_insert_with(|| Process::new(pid))
            .clone()
    };
    infos
        .into_iter()
        .map(|mut info| {
            if info.detail.is_none() && may_be_service(&info) {
                info.detail =
                    crate::pubsub::inspect(&info.name).map(|s| crate::pubsub::summary(&s));
            }
            if info.detail.is_none() && may_be(&info, memlink::ObjectKind::Queue) {
                info.detail = crate::queue::inspect(&info.name).map(|q| crate::queue::summary(&q));
            }
            if info.detail.is_none() && may_be(&info, memlink::ObjectKind::RequestResponse) {
                info.detail = crate::rpc::inspect(&info.name).map(|r| crate::rpc::summary(&r));
            }
            let path = info.path.clone();
            let found = path
                .as_ref()
                .and_then(|p| users.get(p))
                .cloned()
                .unwrap_or_else(Users::default);
            let holder_pids: BTreeSet<u32> =
                info.holders.iter().copied().chain(found.open).collect();
            Described {
                holders: holder_pids.into_iter().map(&mut process).collect(),
                mapped_by: found.mapped.into_iter().map(&mut process).collect(),
                info,
                path,
            }
        })
        .collect()
}

/// Whether the object may be a service: marked as one, or a region on a
/// platform whose regions carry no kind (Windows sections).
fn may_be_service(info: &ObjectInfo) -> bool {
    let kind = info.kind;
    info.state == State::Alive
        && (kind == Some(memlink::ObjectKind::Service)
            || (cfg!(windows) && kind == Some(memlink::ObjectKind::Region)))
}

/// Whether the object may be of messaging kind `kind`: marked as one, or
/// a region on a platform whose regions carry no kind (Windows sections).
fn may_be(info: &ObjectInfo, kind: memlink::ObjectKind) -> bool {
    info.state == State::Alive
        && (info.kind == Some(kind)
            || (cfg!(windows) && info.kind == Some(memlink::ObjectKind::Region)))
}

/// Why `ls` hides an object unless `--all`: `None` if it is shown.
fn hidden_because(info: &ObjectInfo) -> Option<Hidden> {
    if info.is_memlink() {
        None
    } else if info.name.starts_with("sem.") {
        Some(Hidden::Semaphore)
    } else if info.state == State::Unknown {
        Some(Hidden::Unreadable)
    } else {
        None
    }
}

#[derive(PartialEq)]
enum Hidden {
    Semaphore,
    Unreadable,
}

/// The state, with a sync object's own state after it: `alive (count 2 of 5)`.
fn state_text(info: &ObjectInfo) -> String {
    match &info.detail {
        Some(detail) => format!("{} ({detail})", info.state.as_str()),
        None => info.state.as_str().to_owned(),
    }
}

fn state_cell(info: &ObjectInfo) -> Cell {
    let state = info.state;
    let cell = Cell::new(state_text(info));
    match state {
        State::Alive => cell.fg(Color::Green),
        State::Stale => cell.fg(Color::Yellow).add_attribute(Attribute::Bold),
        State::Unknown => cell.add_attribute(Attribute::Dim),
    }
}

/// A borderless table (as `ps` or `ip` print them), styled only where
/// colour is on.
pub(crate) fn plain_table() -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    if colour_on_stdout() {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    table
}

fn print_table(table: &mut Table, right_aligned: &[usize]) -> CmdResult {
    let columns = table.column_count();
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i + 1 == columns { 0 } else { 2 }));
        if right_aligned.contains(&i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = std::io::stdout().lock();
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn print_json(value: &impl Serialize) -> CmdResult {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

pub fn ls(args: LsArgs) -> CmdResult {
    let mut shown = Vec::new();
    let (mut semaphores, mut unreadable) = (0, 0);
    for info in memlink::list()? {
        match hidden_because(&info) {
            Some(why) if !args.all => match why {
                Hidden::Semaphore => semaphores += 1,
                Hidden::Unreadable => unreadable += 1,
            },
            _ => shown.push(info),
        }
    }
    let objects = describe(shown, false);
    if args.json {
        let json: Vec<ObjectJson> = objects.iter().map(|o| o.json(false)).collect();
        return print_json(&json);
    }

    if objects.is_empty() {
        eprintln!("no shared-memory objects");
    } else {
        let mut table = plain_table();
        table.set_header(
            [
                "NAME", "KIND", "ORIGIN", "SIZE", "LIFETIME", "STATE", "HOLDERS",
            ]
            .map(|h| Cell::new(h).add_attribute(Attribute::Bold)),
        );
        for o in &objects {
            let info = &o.info;
            let holders = match o.holders.len() {
                0 if !info.holders_known => "?".to_owned(),
                0 => "-".to_owned(),
                1..=3 => join(o.holders.iter().map(Process::short)),
                n => format!(
                    "{} and {} more",
                    join(o.holders[..2].iter().map(Process::short)),
                    n - 2
                ),
            };
            table.add_row(vec![
                Cell::new(&info.name),
                Cell::new(info.kind.map_or("-", |k| k.as_str())),
                Cell::new(info.origin.as_str()),
                Cell::new(human_size(info.size)),
                Cell::new(info.lifetime.as_str()),
                state_cell(info),
                Cell::new(holders),
            ]);
        }
        print_table(&mut table, &[3])?;
    }
    let mut notes = Vec::new();
    if semaphores > 0 {
        notes.push(plural(semaphores, "POSIX semaphore", "POSIX semaphores"));
    }
    if unreadable > 0 {
        notes.push(plural(
            unreadable,
            "object this user cannot open",
            "objects this user cannot open",
        ));
    }
    if !notes.is_empty() {
        eprintln!(
            "not shown: {}; `memlink ls --all` shows them",
            notes.join(" and ")
        );
    }
    Ok(())
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

pub fn info(args: InfoArgs) -> CmdResult {
    let info = memlink::inspect(&args.name)?;
    let object = describe(vec![info], true).remove(0);
    if args.json {
        return print_json(&object.json(true));
    }
    let info = &object.info;
    let what = info.kind.map_or("shared memory", |k| k.as_str());
    let kind = match info.origin {
        Origin::Memlink => format!("{what}, made by memlink"),
        Origin::Foreign => format!("{what}, made by another program (foreign)"),
        Origin::Unknown => format!("{what}, made by memlink or another program (unknown)"),
    };
    let lifetime = match (info.lifetime, info.is_memlink()) {
        (Lifetime::LastHandle, _) => "last-handle: the name goes away with the last handle",
        (Lifetime::Persistent, true) => "persistent: stays until removed",
        (Lifetime::Persistent, false) => "persistent: foreign objects stay until removed",
    };
    let state = match info.state {
        State::Alive => state_text(info),
        State::Stale => {
            "stale: every process that held it has died; `memlink reap` removes it".to_owned()
        }
        State::Unknown => "unknown: it cannot be opened (another user's object?)".to_owned(),
    };
    let processes = |list: &[Process]| {
        if list.is_empty() {
            "none".to_owned()
        } else {
            list.iter()
                .map(Process::long)
                .collect::<Vec<_>>()
                .join("\n")
        }
    };

    let mut table = plain_table();
    let mut row = |key: &str, value: String| {
        table.add_row(vec![
            Cell::new(key).add_attribute(Attribute::Bold),
            Cell::new(value),
        ]);
    };
    row("name", info.name.clone());
    row("kind", kind);
    row("size", human_size_exact(info.size));
    row("lifetime", lifetime.to_owned());
    row("state", state);
    if let Some(mode) = info.mode {
        row("mode", human_mode(mode));
    }
    if let Some(path) = &object.path {
        row("path", path.clone());
    }
    if may_be_service(info) {
        if let Some(service) = crate::pubsub::inspect(&info.name) {
            let members = |list: &[memlink::pubsub::ParticipantInfo], what: &str| {
                if list.is_empty() {
                    return "none".to_owned();
                }
                list.iter()
                    .map(|p| {
                        let missed = if p.missed > 0 {
                            format!(", missed {}", p.missed)
                        } else {
                            String::new()
                        };
                        format!(
                            "{}{}  {what} {}{missed}",
                            Process::new(p.pid).long(),
                            if p.bridge { " (bridge)" } else { "" },
                            p.samples
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            let payload = if service.slices {
                format!(
                    "slices of {} ({} each), at most {}",
                    service.payload_type,
                    plural(service.payload_size as usize, "byte", "bytes"),
                    plural(service.max_payload as usize, "byte", "bytes")
                )
            } else {
                format!(
                    "{} ({})",
                    service.payload_type,
                    plural(service.payload_size as usize, "byte", "bytes")
                )
            };
            row("payload", payload);
            row(
                "settings",
                format!(
                    "{} publishers, {} subscribers at most; capacity {}, history {}, {}",
                    service.max_publishers,
                    service.max_subscribers,
                    service.capacity,
                    service.history,
                    match service.overflow {
                        memlink::pubsub::Overflow::Block => "slow subscribers block publishers",
                        _ => "slow subscribers miss the oldest",
                    }
                ),
            );
            row(
                "slots",
                format!(
                    "{} of {} held by subscribers",
                    service.slots_held, service.slots
                ),
            );
            row("publishers", members(&service.publishers, "sent"));
            row("subscribers", members(&service.subscribers, "received"));
        }
    }
    if may_be(info, memlink::ObjectKind::Queue) {
        if let Some(queue) = crate::queue::inspect(&info.name) {
            crate::queue::rows(&queue, &mut row);
        }
    }
    if may_be(info, memlink::ObjectKind::RequestResponse) {
        if let Some(rpc) = crate::rpc::inspect(&info.name) {
            crate::rpc::rows(&rpc, &mut row);
        }
    }
    if info.holders_known {
        row("holders", processes(&object.holders));
        row("mapped by", processes(&object.mapped_by));
    } else {
        row("holders", "not reported on this platform".to_owned());
    }
    print_table(&mut table, &[])
}

pub fn rm(args: RmArgs) -> CmdResult {
    // The worst exit status of the names that failed; 0 if none did.
    let mut exit_code = 0;
    for name in &args.names {
        if let Err(e) = remove_one(name, args.force) {
            exit_code = exit_code.max(crate::exit_code(&*e));
            crate::report(&*e);
        }
    }
    if exit_code == 0 {
        Ok(())
    } else {
        Err(Box::new(crate::AlreadyReported { exit_code }))
    }
}

/// Whether removing the object without --force is refused: a memlink
/// last-handle object that live processes hold.
fn needs_force(info: &ObjectInfo) -> bool {
    info.is_memlink() && info.lifetime == Lifetime::LastHandle && info.state == State::Alive
}

fn remove_one(name: &str, force: bool) -> CmdResult {
    let info = match memlink::inspect(name) {
        Ok(info) => info,
        // Nothing to look at (no such name, a bad one, a FIFO or directory
        // in the way): the removal itself says so, or clears what blocks
        // the name.
        Err(e)
            if matches!(
                e.kind(),
                memlink::ErrorKind::NotFound
                    | memlink::ErrorKind::InvalidName
                    | memlink::ErrorKind::WrongKind
            ) =>
        {
            return Ok(memlink::remove(name)?)
        }
        Err(e) => return Err(Box::new(e)),
    };
    let removed = if force {
        memlink::remove(name)
    } else if needs_force(&info) {
        return Err(refuse_held(name, info));
    } else {
        // Removes only the object looked at, proving under its lock that
        // nobody holds it: one reaped and re-created meanwhile stays.
        memlink::remove_unheld(&info)
    };
    match removed {
        Ok(()) => Ok(()),
        // Removed by another process since the look above.
        Err(e) if e.kind() == memlink::ErrorKind::NotFound => Ok(()),
        // A live process opened it since the look above.
        Err(e) if e.kind() == memlink::ErrorKind::InUse => match memlink::inspect(name) {
            Ok(now) => Err(refuse_held(name, now)),
            Err(_) => Err(Box::new(e)),
        },
        // Among the rest, `Unsupported` for a platform that cannot remove a
        // live name (Windows, --force or not): the library's own words say
        // why, with nothing to suggest.
        Err(e) => Err(Box::new(e)),
    }
}

/// The refusal to remove a held object without --force, naming who holds
/// it.
fn refuse_held(name: &str, info: ObjectInfo) -> Box<dyn std::error::Error> {
    let kind = info.kind.map_or("region", |k| k.as_str());
    let info_removable_while_held = info.removable_while_held;
    let holders = describe(vec![info], false).remove(0).holders;
    let by = match holders.len() {
        0 => "live processes".to_owned(),
        _ => join(holders.iter().map(|p| match &p.command {
            Some(c) => format!("{} ({c})", p.pid),
            None => p.pid.to_string(),
        })),
    };
    let hint = if info_removable_while_held {
        " (--force removes the name now, and they keep their memory)"
    } else {
        "; this platform cannot remove a name before that"
    };
    failure(format!(
        "cannot remove {kind} \"{name}\": it is held by {by}; it goes away when they close it{hint}"
    ))
}

pub fn reap(args: ReapArgs) -> CmdResult {
    let reaped = if args.dry_run {
        memlink::list()?
            .into_iter()
            .filter(|i| i.is_memlink() && i.state == State::Stale)
            .collect()
    } else {
        let report = memlink::reap()?;
        // Left in place (another user's, say): said, but not a failure of
        // this reap, whose own objects went.
        for (_, why) in &report.skipped {
            eprintln!("memlink: left in place: {why}");
        }
        report.removed
    };
    if args.json {
        let json: Vec<ObjectJson> = describe(reaped, false)
            .iter()
            .map(|o| o.json(false))
            .collect();
        return print_json(&json);
    }
    let mut out = std::io::stdout().lock();
    if reaped.is_empty() {
        writeln!(out, "no stale objects")?;
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for info in &reaped {
        writeln!(
            out,
            "{verb} stale {} \"{}\" ({})",
            info.kind.map_or("object", |k| k.as_str()),
            info.name,
            human_size(info.size)
        )?;
    }
    Ok(())
}
