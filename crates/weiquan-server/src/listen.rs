//! The accept loop: HTTP/1.1 over TCP with limits that hold under abuse,
//! which `axum::serve` does not set. (Not HTTP/2 in clear text: detecting it
//! means waiting for a client's first bytes before any timeout runs, which a
//! silent socket never sends.)
//!
//! - **Header read timeout**: a client must send a request's headers within
//!   [`ConnLimits::header_read_timeout`]; hyper applies it as well to an idle
//!   keep-alive connection waiting for its next request, so a socket that says
//!   nothing is closed, not kept.
//! - **A cap on open connections**: at most [`ConnLimits::max_connections`] at
//!   once; the next waits in the kernel's backlog until one closes, so idle
//!   sockets cannot exhaust the process's file handles (which would also
//!   stop the database from opening files).
//! - **A cap per source** (an IPv4 address, an IPv6 /64: [`source`]): one holds at most
//!   [`ConnLimits::per_address`] of them, so that one client's idle sockets
//!   cannot shut everyone else out while they wait for their timeout; a
//!   connection over the cap is closed at once.
//! - Accept errors (out of file handles) pause the loop briefly instead of
//!   spinning.
//!
//! It does not limit request rates (the `auth` and `api` layers do) or bodies
//! (the router's body limit does).

use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Limits on connections.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Time allowed for a request's headers, and for an idle connection's next request.
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections open at once from one address.
    pub per_address: usize,
    /// Time in-flight connections get to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            header_read_timeout: Duration::from_secs(20),
            // Well under the usual 1,024 open files once the database's are counted.
            max_connections: 768,
            // Room for an office behind one NAT address, not for one client to take all.
            per_address: 192,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves;
/// then stops accepting and gives open connections `shutdown_grace` to finish.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, addr) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection; pausing 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(slot) = AddressSlot::take(&per_address, source(addr.ip()), limits.per_address) else {
            tracing::debug!(%addr, "closed: this address holds its share of connections");
            continue;
        };
        let app = router.clone().layer(axum::Extension(ConnectInfo(addr)));
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_headers(crate::problem::HYPER_MAX_HEADERS)
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopping.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop((permit, slot));
        });
    }
    let _ = stop.send(true);
    // Every permit back means every connection has closed.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.shutdown_grace, permits.acquire_many(all)).await;
}

/// One open connection counted against its address; dropping it gives it back.
struct AddressSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl AddressSlot {
    /// A slot for `ip`, unless it holds `max` already.
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut map = counts.lock().ok()?;
        let n = map.entry(ip).or_insert(0);
        if *n >= max.max(1) {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.counts.lock() {
            if let Some(n) = map.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&self.ip);
                }
            }
        }
    }
}

/// The source a connection's or an anonymous request's share is counted
/// against: an IPv4 address, or an IPv6 address's /64. One IPv6 client is
/// usually given a whole /64 and can speak from any address in it, so counting
/// single IPv6 addresses would let it take every share and skip every limit.
pub fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// The peer of a request, when it came through [`serve`].
pub fn peer(req: &axum::extract::Request) -> Option<SocketAddr> {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv6 /64 is one source, whatever address in it speaks; an IPv4
    /// address is one, also when it arrives mapped into IPv6.
    #[test]
    fn an_ipv6_64_is_one_source() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        assert_eq!(source(ip("2001:db8:1:2::1")), source(ip("2001:db8:1:2:ffff:1:2:3")));
        assert_ne!(source(ip("2001:db8:1:2::1")), source(ip("2001:db8:1:3::1")));
        assert_eq!(source(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_ne!(source(ip("192.0.2.7")), source(ip("192.0.2.8")));
        // So a /64 holds one share of connections, not one per address.
        let counts = Arc::default();
        let first = AddressSlot::take(&counts, source(ip("2001:db8::1")), 1);
        assert!(first.is_some());
        assert!(AddressSlot::take(&counts, source(ip("2001:db8::2")), 1).is_none());
        drop(first);
        assert!(AddressSlot::take(&counts, source(ip("2001:db8::2")), 1).is_some());
    }
}
