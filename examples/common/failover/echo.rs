//! A real server of the failover lab, as its own process in the server's namespace: TCP on the
//! stream and persistent ports greets each connection with the server's name (`rs2\n`) and
//! then echoes everything; UDP on the stream port echoes each datagram. It prints `ready` once
//! listening and exits when its standard input closes (the lab ended or died).

use std::io::{BufRead, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;

use super::{PERSIST_PORT, STREAM_PORT};

/// Runs a server: `args` are its index (0, 1, 2) and the address the UDP echo binds (DR
/// servers answer from the VIP, which an unbound socket would not choose).
pub(super) fn main(args: &[String]) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failover lab server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &[String]) -> Result<(), String> {
    let [index, udp] = args else { return Err("usage: INDEX UDP_ADDRESS".into()) };
    let index: usize = index.parse().map_err(|_| "bad index")?;
    let udp: Ipv4Addr = udp.parse().map_err(|_| "bad address")?;
    let name = format!("rs{}\n", index + 1);
    for port in [STREAM_PORT, PERSIST_PORT] {
        let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).map_err(|e| format!("TCP {port}: {e}"))?;
        let name = name.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let name = name.clone();
                std::thread::spawn(move || echo(c, &name));
            }
        });
    }
    let sock = UdpSocket::bind((udp, STREAM_PORT)).map_err(|e| format!("UDP {udp}:{STREAM_PORT}: {e}"))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    });
    println!("ready");
    // Until the lab closes our standard input.
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    Ok(())
}

/// Greets the connection with `name`, then echoes until it ends.
fn echo(mut c: TcpStream, name: &str) {
    let _ = c.set_nodelay(true);
    if c.write_all(name.as_bytes()).is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    while let Ok(n) = c.read(&mut buf) {
        if n == 0 || c.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}
