//! `shmprim ls`, `stat`, `rm`, `gc` and `watch`, run as the real binary against
//! segments in known states.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{ShmName, python_eval as py, wait_until, word};

const LIMIT: Duration = Duration::from_secs(20);

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    match role.as_str() {
        "hold_mutex" => {
            let m = shmprim::Mutex::<u64>::open(&args[0]).unwrap();
            let mut g = m.lock().unwrap();
            *g = 9;
            std::fs::write(&args[1], b"locked").unwrap();
            std::thread::sleep(LIMIT);
        }
        "create_and_hold" => {
            let seg = shmprim::Segment::open_or_create(&args[0], 64).unwrap().0;
            word(&seg, 1).store(1, Ordering::Release);
            std::thread::sleep(LIMIT);
        }
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child playing `role` (see `child_entry`).
fn spawn(role: &str, args: &[&str]) -> common::ChildProc {
    common::spawn_with(child_entry, role, args)
}

fn shmprim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shmprim"))
        .args(args)
        .output()
        .expect("run shmprim");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ls_and_stat_json_report_each_primitives_state() {
    let mutex = ShmName::new("cli_mutex");
    let flag = ShmName::new("cli_mutex_flag");
    let barrier = ShmName::new("cli_barrier");
    let value = ShmName::new("cli_value");
    let _m = shmprim::Mutex::<u64>::create(&mutex, 0).unwrap();
    let mut holder = spawn("hold_mutex", &[&mutex, &flag.path()]);
    assert!(wait_until(LIMIT, || std::path::Path::new(&flag.path()).exists()));
    holder.kill();
    let b = shmprim::Barrier::create(&barrier, 2).unwrap();
    b.abort();
    let _v = shmprim::Value::<f64>::create(&value, 2.5).unwrap();
    let queue = ShmName::new("cli_queue");
    let q = shmprim::Queue::<u32>::create(&queue, 16).unwrap();
    for i in 0..5 {
        q.put(i).unwrap();
    }
    q.shutdown(false);

    let (code, ls, err) = shmprim(&["ls", "--json", "--prefix", &common::own_prefix()]);
    assert_eq!(code, 0, "{err}");
    let pick = |name: &str, field: &str| {
        py(
            &ls,
            &format!("[x{field} for x in d if x['name'] == '{name}']"),
        )
    };
    assert_eq!(pick(&mutex, "['kind']"), "['mutex']");
    assert_eq!(
        pick(&mutex, "['state']['state']"),
        "['owner died (next locker must recover it)']"
    );
    assert_eq!(pick(&mutex, "['dead_participants']"), "[1]");
    assert_eq!(pick(&barrier, "['state']['broken']"), "[True]");
    assert_eq!(pick(&barrier, "['state']['parties']"), "[2]");
    assert_eq!(pick(&value, "['payload']['name']"), "['f64']");
    assert_eq!(pick(&value, "['state_line'].split(',')[0]"), "['= 2.5']");
    assert_eq!(pick(&queue, "['kind']"), "['queue']");
    let q_state = format!(
        "[(x['state']['depth'], x['state']['capacity'], x['state']['closed']) for x in d if x['name'] == '{}']",
        queue.as_str()
    );
    assert_eq!(py(&ls, &q_state), "[(5, 16, True)]");
    let (code, qstat, _) = shmprim(&["stat", "--json", &queue]);
    assert_eq!(code, 0);
    assert_eq!(
        py(&qstat, "(d['state']['depth'], d['payload']['size'])"),
        "(5, 4)"
    );

    let (code, stat, err) = shmprim(&["stat", "--json", &mutex]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        py(
            &stat,
            "(d['health'], d['state']['value'], sorted(p['status'] for p in d['participants']))"
        ),
        "('ready', '9', ['alive', 'dead'])"
    );
    let (code, text, _) = shmprim(&["stat", &barrier]);
    assert_eq!(code, 0);
    assert!(
        text.contains("kind:          barrier") && text.contains("BROKEN"),
        "{text}"
    );
    let (code, table, _) = shmprim(&["ls"]);
    assert_eq!(code, 0);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(value.as_str()) && l.contains("= 2.5")),
        "{table}"
    );
}

#[test]
fn gc_dry_run_removes_nothing_and_gc_removes_only_orphans() {
    let orphan = ShmName::new("cli_gc_orphan");
    let kept = ShmName::new("cli_gc_kept");
    let mut c = spawn("create_and_hold", &[&orphan]);
    assert!(wait_until(LIMIT, || {
        shmprim::Segment::open(&orphan).is_ok_and(|s| word(&s, 1).load(Ordering::Acquire) == 1)
    }));
    c.kill();
    let _kept = shmprim::Segment::create(&kept, 64).unwrap();

    let prefix = common::own_prefix();
    let (code, out, _) = shmprim(&["gc", "--dry-run", "--json", "--prefix", &prefix]);
    assert_eq!(code, 0);
    assert_eq!(
        py(
            &out,
            &format!("'{}' in [x['name'] for x in d]", orphan.as_str())
        ),
        "True"
    );
    assert_eq!(
        py(
            &out,
            &format!("'{}' in [x['name'] for x in d]", kept.as_str())
        ),
        "False"
    );
    assert!(
        std::path::Path::new(&orphan.path()).exists(),
        "--dry-run removed it"
    );

    let (code, out, _) = shmprim(&["gc", "--prefix", &prefix]);
    assert_eq!(code, 0);
    assert!(out.contains(orphan.as_str()), "{out}");
    assert!(!std::path::Path::new(&orphan.path()).exists());
    assert!(std::path::Path::new(&kept.path()).exists());
}

#[test]
fn rm_refuses_a_file_that_is_not_a_shmprim_segment() {
    let foreign = ShmName::new("cli_rm_foreign");
    std::fs::write(foreign.path(), vec![7u8; 8192]).unwrap();
    let (code, _, err) = shmprim(&["rm", &foreign]);
    assert_ne!(code, 0);
    assert!(err.contains("not a shmprim segment"), "{err}");
    assert!(std::path::Path::new(&foreign.path()).exists());

    let ours = ShmName::new("cli_rm_ours");
    drop(shmprim::Segment::create(&ours, 8).unwrap());
    let (code, out, err) = shmprim(&["rm", &ours]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed"));
    assert!(!std::path::Path::new(&ours.path()).exists());
}

#[test]
fn watch_refreshes_and_shows_rates() {
    let name = ShmName::new("cli_watch");
    let sem = shmprim::Semaphore::create(&name, 0).unwrap();
    let bumper = std::thread::spawn({
        let name = name.0.clone();
        move || {
            let s = shmprim::Semaphore::open(&name).unwrap();
            for _ in 0..60 {
                s.release(100).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    let (code, out, err) = shmprim(&["watch", &name, "--interval-ms", "100", "--count", "3"]);
    bumper.join().unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.matches(name.as_str()).count(),
        3,
        "three refreshes: {out}"
    );
    assert!(
        out.contains("rates: ") && out.contains("value +"),
        "a rising value shows a rate: {out}"
    );
    assert!(sem.value() > 0);
    let (code, _, err) = shmprim(&["watch", "no-such-segment-here", "--count", "1"]);
    assert_ne!(code, 0);
    assert!(err.contains("does not exist"), "{err}");
}
