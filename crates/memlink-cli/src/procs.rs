//! What the system says about processes: their command lines, and which of
//! them have an object open or mapped. Read from `/proc` where it exists
//! (Linux); on Windows only a process's program is known (its image path);
//! elsewhere nothing is found and only the pids are shown.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;

use serde::Serialize;

/// A process, as listings show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Process {
    /// Its id.
    pub pid: u32,
    /// Its command line, arguments joined by spaces (on Windows, the
    /// program's path alone); `None` where the system does not tell (macOS
    /// and the BSDs, no permission, or the process has gone).
    pub command: Option<String>,
}

impl Process {
    pub fn new(pid: u32) -> Process {
        Process {
            pid,
            command: command_line(pid),
        }
    }

    /// `1234 (memlink)`: the pid and the program's name.
    pub fn short(&self) -> String {
        match self.command.as_deref().and_then(program_name) {
            Some(name) => format!("{} ({name})", self.pid),
            None => self.pid.to_string(),
        }
    }

    /// `1234  memlink create ...`: the pid and the whole command line.
    pub fn long(&self) -> String {
        match &self.command {
            Some(command) => format!("{:<7} {command}", self.pid),
            None => self.pid.to_string(),
        }
    }
}

/// The base name of a command line's program.
fn program_name(command: &str) -> Option<&str> {
    // Windows reports the program's path alone, which may hold spaces.
    let program = if cfg!(windows) {
        command
    } else {
        command.split(' ').next()?
    };
    let name = program.rsplit(['/', '\\']).next()?;
    (!name.is_empty()).then_some(name)
}

/// The command line of `pid`: `/proc/PID/cmdline` with its arguments joined
/// by spaces, or `[comm]` for a process without one (a kernel thread, or a
/// zombie).
#[cfg(not(windows))]
pub fn command_line(pid: u32) -> Option<String> {
    let proc_dir = std::path::Path::new("/proc").join(pid.to_string());
    let raw = fs::read(proc_dir.join("cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| quote(&String::from_utf8_lossy(arg)))
        .collect();
    if !args.is_empty() {
        return Some(args.join(" "));
    }
    let comm = fs::read_to_string(proc_dir.join("comm")).ok()?;
    Some(format!("[{}]", comm.trim_end()))
}

/// The program of `pid`, as its full image path: Windows tells another
/// process's command line only by reading that process's memory, which
/// needs rights a listing should not ask for; the image path needs only
/// `PROCESS_QUERY_LIMITED_INFORMATION`.
#[cfg(windows)]
pub fn command_line(pid: u32) -> Option<String> {
    use windows_sys::Win32::Foundation::CloseHandle;
    use windows_sys::Win32::System::Threading::{
        OpenProcess, QueryFullProcessImageNameW, PROCESS_NAME_WIN32,
        PROCESS_QUERY_LIMITED_INFORMATION,
    };
    // SAFETY: OpenProcess takes no pointers; a null result is checked.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if process.is_null() {
        return None;
    }
    let mut path = [0u16; 1024];
    let mut len = path.len() as u32;
    // SAFETY: `process` is a live handle opened above; `path` is writable
    // for `len` UTF-16 units, and the call writes back how many it used.
    let ok = unsafe {
        QueryFullProcessImageNameW(process, PROCESS_NAME_WIN32, path.as_mut_ptr(), &mut len)
    };
    // SAFETY: `process` was opened above and is closed once, here.
    unsafe { CloseHandle(process) };
    (ok != 0).then(|| String::from_utf16_lossy(&path[..len as usize]))
}

/// One argument as a shell would need it typed: as is when plain,
/// single-quoted when it has spaces or special characters, and as an
/// escaped string (`"a\nb"`) when it has control characters, so that a
/// command line always shows on one line.
#[cfg(not(windows))]
fn quote(arg: &str) -> String {
    let plain = |c: char| c.is_alphanumeric() || "_@%+=:,./-".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_owned()
    } else if arg.chars().any(char::is_control) {
        format!("{arg:?}")
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The processes that use one object, found in `/proc`.
#[derive(Debug, Default, Clone)]
pub struct Users {
    /// Processes with a descriptor open on it (`/proc/PID/fd`).
    pub open: BTreeSet<u32>,
    /// Processes with it mapped (`/proc/PID/maps`).
    pub mapped: BTreeSet<u32>,
}

/// Finds the processes that have any of `paths` open (and, with `maps`,
/// mapped), keyed by path. Files are matched by device and inode, not by
/// name: a creator's descriptor and mappings show the nameless file it made
/// the object from (`/dev/shm/#123 (deleted)`), not the name it published.
/// Processes this user may not look into (other users', unless run as root)
/// are not seen; this process is left out.
pub fn users(paths: &HashSet<String>, maps: bool) -> HashMap<String, Users> {
    let mut found: HashMap<String, Users> = HashMap::new();
    let by_id: HashMap<(u64, u64), &String> = paths
        .iter()
        .filter_map(|path| Some((file_id(&fs::metadata(path).ok()?)?, path)))
        .collect();
    if by_id.is_empty() {
        return found;
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(fds) = fs::read_dir(entry.path().join("fd")) {
            for fd in fds.flatten() {
                // stat follows the descriptor to its file, named or not.
                let id = fs::metadata(fd.path()).ok().and_then(|m| file_id(&m));
                if let Some(path) = id.and_then(|id| by_id.get(&id)) {
                    found.entry((*path).clone()).or_default().open.insert(pid);
                }
            }
        }
        if !maps {
            continue;
        }
        let Ok(text) = fs::read_to_string(entry.path().join("maps")) else {
            continue;
        };
        for line in text.lines() {
            if let Some(path) = map_line_id(line).and_then(|id| by_id.get(&id)) {
                found.entry((*path).clone()).or_default().mapped.insert(pid);
            }
        }
    }
    found
}

/// The (device, inode) of a file, where the platform has them.
fn file_id(meta: &fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// The (device, inode) of the file a `/proc/PID/maps` line maps:
/// "start-end perms offset MAJ:MIN inode path", numbers of the device in
/// hex, encoded as Linux's `makedev` does.
fn map_line_id(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace().skip(3);
    let (major, minor) = fields.next()?.split_once(':')?;
    let inode: u64 = fields.next()?.parse().ok()?;
    if inode == 0 {
        return None;
    }
    let major = u64::from_str_radix(major, 16).ok()?;
    let minor = u64::from_str_radix(minor, 16).ok()?;
    let dev = ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff);
    Some((dev, inode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_map_lines() {
        let line = "7f00-7f01 rw-s 00000000 00:1a 4242    /dev/shm/#77 (deleted)";
        assert_eq!(map_line_id(line), Some((0x1a, 4242)));
        assert_eq!(map_line_id("7f00-7f01 r-xp 00000000 00:00 0 "), None);
        let big = "0-1 r--s 0 103:05 9 /x";
        assert_eq!(map_line_id(big), Some(((0x103 << 8) | 5, 9)));
    }

    #[test]
    #[cfg(not(windows))]
    fn program_names() {
        assert_eq!(program_name("/usr/bin/python3 -c x"), Some("python3"));
        assert_eq!(program_name("memlink create x"), Some("memlink"));
    }

    #[test]
    #[cfg(windows)]
    fn program_names_are_the_last_part_of_the_image_path() {
        let path = r"C:\Program Files\memlink\memlink.exe";
        assert_eq!(program_name(path), Some("memlink.exe"));
        assert_eq!(
            command_line(std::process::id())
                .as_deref()
                .and_then(program_name),
            std::env::current_exe()
                .ok()
                .and_then(|p| p.file_name()?.to_str().map(str::to_owned))
                .as_deref()
        );
    }

    #[test]
    #[cfg(not(windows))]
    fn quotes_arguments() {
        assert_eq!(quote("--size"), "--size");
        assert_eq!(quote("hello world"), "'hello world'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("a\nb"), r#""a\nb""#);
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn describes_processes() {
        let command = if cfg!(windows) {
            r"C:\Program Files\memlink.exe"
        } else {
            "/usr/bin/memlink.exe create x --size 4K"
        };
        let p = Process {
            pid: 42,
            command: Some(command.into()),
        };
        assert_eq!(p.short(), "42 (memlink.exe)");
        assert_eq!(p.long(), format!("42      {command}"));
        let bare = Process {
            pid: 42,
            command: None,
        };
        assert_eq!(bare.short(), "42");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process_command_line() {
        let line = command_line(std::process::id()).unwrap();
        assert!(line.contains("memlink"), "{line}");
    }
}
