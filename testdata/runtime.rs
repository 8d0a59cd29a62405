// A Rust program that leans on std: threads, mpsc channels, Mutex and
// Condvar, a child process through std::process::Command, std::fs and
// std::net over the loopback. It
// prints only what any correct kernel makes it print, and exits with
// status 4.
//
// Run with an argument "child" it is the child: it echoes its standard input
// in upper case and exits with status 6.

use std::env;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{self, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Condvar, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

fn child() {
    let stdin = io::stdin();
    for line in stdin.lock().lines() {
        println!("{}", line.unwrap().to_uppercase());
    }
    process::exit(6);
}

// Worker threads send results over a channel.
fn channels() {
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::new();
    for w in 0..4u64 {
        let tx = tx.clone();
        handles.push(thread::spawn(move || {
            for i in 0..25u64 {
                let n = w * 25 + i + 1;
                tx.send(n * n).unwrap();
            }
        }));
    }
    drop(tx);
    let sum: u64 = rx.iter().sum();
    for h in handles {
        h.join().unwrap();
    }
    println!("sum of squares: {}", sum);

    // A bounded channel makes the sender wait for the receiver.
    let (tx, rx) = mpsc::sync_channel(1);
    let producer = thread::spawn(move || {
        for i in 0..10 {
            tx.send(i).unwrap();
        }
    });
    let got: Vec<i32> = rx.iter().collect();
    producer.join().unwrap();
    println!("bounded: {:?}", got);
}

// Threads contend on a mutex; a condition variable hands a value over.
fn locks() {
    let counter = Arc::new(Mutex::new(0u32));
    let atomic = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let counter = Arc::clone(&counter);
            let atomic = Arc::clone(&atomic);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..1000 {
                    *counter.lock().unwrap() += 1;
                    atomic.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    println!(
        "mutex count: {} atomic count: {}",
        *counter.lock().unwrap(),
        atomic.load(Ordering::SeqCst)
    );

    let pair = Arc::new((Mutex::new(None), Condvar::new()));
    let pair2 = Arc::clone(&pair);
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(10));
        let (lock, cvar) = &*pair2;
        *lock.lock().unwrap() = Some(42);
        cvar.notify_all();
    });
    let (lock, cvar) = &*pair;
    let mut value = lock.lock().unwrap();
    while value.is_none() {
        value = cvar.wait(value).unwrap();
    }
    println!("condvar value: {:?}", *value);
    drop(value);

    let (_guard, timeout) = cvar
        .wait_timeout(lock.lock().unwrap(), Duration::from_millis(20))
        .unwrap();
    println!("wait_timeout timed out: {}", timeout.timed_out());

    let table = RwLock::new(vec![1, 2, 3]);
    {
        let a = table.read().unwrap();
        let b = table.read().unwrap();
        println!("readers: {} {}", a.len(), b.len());
    }
    table.write().unwrap().push(4);
    println!("after write: {:?}", *table.read().unwrap());
}

// Sleeps last at least as long as asked; a spinning thread does not starve
// the others.
fn timing() {
    let start = Instant::now();
    let sleepers: Vec<_> = (1..=3)
        .map(|i| thread::spawn(move || thread::sleep(Duration::from_millis(20 * i))))
        .collect();
    for s in sleepers {
        s.join().unwrap();
    }
    println!("not early: {}", start.elapsed() >= Duration::from_millis(60));

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let spinner = thread::spawn(move || {
        let mut spins = 0u64;
        while !flag.load(Ordering::Relaxed) {
            spins += 1;
        }
        spins > 0
    });
    thread::sleep(Duration::from_millis(20));
    stop.store(true, Ordering::Relaxed);
    println!("spinner stopped: {}", spinner.join().unwrap());
}

// A child process through Command, with pipes and an exit status.
fn children(me: &PathBuf) {
    let mut child = Command::new(me)
        .arg("child")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(b"hello\nworld\n").unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let status = child.wait().unwrap();
    println!("child status: {:?}", status.code());
    println!("child output: {:?}", out);

    let output = Command::new(me).arg("child").output().unwrap();
    println!("output(): {:?} {:?}", output.status.code(), output.stdout);

    let missing = Command::new("/nonexistent/program").status();
    println!(
        "missing program: {:?}",
        missing.map_err(|e| e.kind()).err()
    );
}

// Files: create, write, read back, list, rename, remove.
fn files() {
    let dir = env::temp_dir().join(format!("runtime-rs-{}", process::id()));
    fs::create_dir(&dir).unwrap();
    for (i, name) in ["b.txt", "a.txt", "c.txt"].iter().enumerate() {
        fs::write(dir.join(name), name.repeat(i + 1)).unwrap();
    }
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            format!("{}:{}", e.file_name().to_string_lossy(), e.metadata().unwrap().len())
        })
        .collect();
    names.sort();
    println!("files: {:?}", names);
    fs::rename(dir.join("a.txt"), dir.join("z.txt")).unwrap();
    println!("read back: {:?}", fs::read_to_string(dir.join("z.txt")).unwrap());
    println!(
        "old name gone: {:?}",
        fs::metadata(dir.join("a.txt")).map_err(|e| e.kind()).err()
    );
    let mut f = fs::OpenOptions::new().append(true).open(dir.join("z.txt")).unwrap();
    f.write_all(b"!").unwrap();
    println!("appended size: {}", fs::metadata(dir.join("z.txt")).unwrap().len());
    fs::remove_dir_all(&dir).unwrap();
    println!("removed: {}", !dir.exists());
}

// TCP over the loopback: a server thread per client, then a refused connect
// to the port of a listener that was dropped.
fn network() {
    let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = ln.local_addr().unwrap();
    let server = thread::spawn(move || {
        let handlers: Vec<_> = (0..3)
            .map(|_| {
                let (stream, _) = ln.accept().unwrap();
                thread::spawn(move || {
                    let mut line = String::new();
                    BufReader::new(stream.try_clone().unwrap()).read_line(&mut line).unwrap();
                    let mut stream = stream;
                    stream.write_all(line.to_uppercase().as_bytes()).unwrap();
                })
            })
            .collect();
        for h in handlers {
            h.join().unwrap();
        }
    });
    let clients: Vec<_> = (0..3)
        .map(|i| {
            thread::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                writeln!(c, "hello {}", i).unwrap();
                let mut line = String::new();
                BufReader::new(c).read_line(&mut line).unwrap();
                line
            })
        })
        .collect();
    let mut got: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    got.sort();
    println!("tcp: {:?}", got);
    server.join().unwrap();
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
    println!("refused: {:?}", refused.map_err(|e| e.kind()).err());
}

fn main() {
    let args: Vec<String> = env::args().collect();
    if args.len() > 1 && args[1] == "child" {
        child();
    }
    let me = env::current_exe().unwrap_or_else(|_| PathBuf::from(&args[0]));
    channels();
    locks();
    timing();
    children(&me);
    files();
    network();
    io::stdout().flush().unwrap();
    process::exit(4);
}
