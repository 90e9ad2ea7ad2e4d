//! Connection admission: who may hold a connection to the server, and which connection gives
//! way when one more arrives at the bound. Every open connection is in one table with its
//! client address and whether a request is in flight on it.
//!
//! At a bound, an *idle* connection (no request in flight: a keep-alive socket nobody uses, a
//! client still dribbling its headers) is closed to make room — the longest idle first, from
//! the same address when that address is at its own bound. Connections serving a request are
//! never closed for a newcomer. When every connection is busy, a small reserve of extra
//! connections still admits `/health` and API calls (the router refuses content on them), so
//! an operator and the API keep answering at the bound. The decision is [`decide`], a pure
//! function; this module does no I/O.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;

/// The bounds, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Connections on the server (the reserve comes on top).
    pub total: usize,
    /// Connections from one client address (trusted proxies are exempt).
    pub per_address: usize,
    /// Extra connections for `/health` and API calls when every other one is busy.
    pub reserve: usize,
}

/// What the table looks like to a newcomer from one address.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    pub total: usize,
    pub reserved: usize,
    pub of_address: usize,
    pub address_has_idle: bool,
    pub any_idle: bool,
    /// The address is a trusted proxy: many clients behind one address.
    pub exempt: bool,
}

/// What to do with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept,
    /// Close the longest-idle connection of the same address, then accept.
    ShedFromAddress,
    /// Close the longest-idle connection of any address, then accept.
    ShedAny,
    /// Accept into the reserve: `/health` and API calls only, one request.
    Reserve,
    /// Refuse (503 and close).
    Refuse,
}

/// The admission rule.
pub fn decide(load: Load, bounds: Bounds) -> Decision {
    if !load.exempt && load.of_address >= bounds.per_address {
        return match load.address_has_idle {
            true => Decision::ShedFromAddress,
            false => Decision::Refuse,
        };
    }
    if load.total < bounds.total {
        return Decision::Accept;
    }
    if load.any_idle {
        Decision::ShedAny
    } else if load.reserved < bounds.reserve {
        Decision::Reserve
    } else {
        Decision::Refuse
    }
}

struct Open {
    address: IpAddr,
    in_flight: usize,
    idle_since: Instant,
    reserve: bool,
    close: CancellationToken,
}

#[derive(Default)]
struct Table {
    open: HashMap<u64, Open>,
    next_id: u64,
}

/// Every open connection of the server.
pub struct Connections {
    bounds: Bounds,
    exempt: Box<dyn Fn(IpAddr) -> bool + Send + Sync>,
    table: Mutex<Table>,
}

/// What admission says about a connection being accepted.
pub enum Admitted {
    /// Serve it; the ticket keeps its place in the table.
    Serve(Ticket),
    /// Answer 503 and close.
    Refused,
}

impl Connections {
    /// `exempt` says which addresses have no per-address bound (trusted proxies).
    pub fn new(
        bounds: Bounds,
        exempt: impl Fn(IpAddr) -> bool + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            bounds,
            exempt: Box::new(exempt),
            table: Mutex::new(Table::default()),
        })
    }

    /// Admits a connection from `address`, closing an idle one to make room when needed.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Admitted {
        let mut table = self.table.lock().expect("connections lock");
        let load = self.load(&table, address);
        let decision = decide(load, self.bounds);
        let victim = match decision {
            Decision::ShedFromAddress => longest_idle(&table, Some(address)),
            Decision::ShedAny => longest_idle(&table, None),
            _ => None,
        };
        if let Some(id) = victim {
            if let Some(open) = table.open.remove(&id) {
                open.close.cancel();
            }
        }
        let reserve = match decision {
            Decision::Refuse => {
                metrics::counter!(crate::telemetry::names::CONNECTIONS_REFUSED).increment(1);
                return Admitted::Refused;
            }
            Decision::Reserve => true,
            _ => false,
        };
        let id = table.next_id;
        table.next_id += 1;
        let close = CancellationToken::new();
        table.open.insert(
            id,
            Open {
                address,
                in_flight: 0,
                idle_since: Instant::now(),
                reserve,
                close: close.clone(),
            },
        );
        metrics::gauge!(crate::telemetry::names::CONNECTIONS).set(table.open.len() as f64);
        Admitted::Serve(Ticket {
            connections: self.clone(),
            id,
            reserve,
            close,
        })
    }

    fn load(&self, table: &Table, address: IpAddr) -> Load {
        let mut load = Load {
            total: 0,
            exempt: (self.exempt)(address),
            ..Load::default()
        };
        for open in table.open.values() {
            let idle = open.in_flight == 0;
            match open.reserve {
                true => load.reserved += 1,
                false => load.total += 1,
            }
            load.any_idle |= idle;
            if open.address == address {
                load.of_address += 1;
                load.address_has_idle |= idle;
            }
        }
        load
    }

    /// Closes the longest-idle connection (the process ran out of file descriptors).
    pub fn shed_one(&self) -> bool {
        let mut table = self.table.lock().expect("connections lock");
        let Some(id) = longest_idle(&table, None) else {
            return false;
        };
        if let Some(open) = table.open.remove(&id) {
            open.close.cancel();
        }
        true
    }

    /// Closes connections idle for longer than `idle` (HTTP/2 keeps no header timer).
    pub fn close_idle(&self, idle: Duration) {
        let mut table = self.table.lock().expect("connections lock");
        table.open.retain(|_, open| {
            let stale = open.in_flight == 0 && open.idle_since.elapsed() > idle;
            if stale {
                open.close.cancel();
            }
            !stale
        });
    }

    /// Connections open now (the reserve included).
    pub fn count(&self) -> usize {
        self.table.lock().expect("connections lock").open.len()
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut Open)) {
        if let Some(open) = self
            .table
            .lock()
            .expect("connections lock")
            .open
            .get_mut(&id)
        {
            change(open);
        }
    }
}

fn longest_idle(table: &Table, address: Option<IpAddr>) -> Option<u64> {
    table
        .open
        .iter()
        .filter(|(_, o)| o.in_flight == 0 && !o.close.is_cancelled())
        .filter(|(_, o)| address.is_none_or(|a| o.address == a))
        .min_by_key(|(_, o)| o.idle_since)
        .map(|(id, _)| *id)
}

/// A connection's place in the table; leaving it (drop) frees the place.
pub struct Ticket {
    connections: Arc<Connections>,
    id: u64,
    /// Admitted into the reserve: `/health` and API calls only.
    pub reserve: bool,
    /// Cancelled when the connection is to be closed to make room.
    pub close: CancellationToken,
}

impl Ticket {
    /// Marks a request in flight until the returned guard drops (with the response body).
    pub fn request(&self) -> InFlight {
        self.connections.update(self.id, |open| open.in_flight += 1);
        InFlight {
            connections: self.connections.clone(),
            id: self.id,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut table = self.connections.table.lock().expect("connections lock");
        table.open.remove(&self.id);
        metrics::gauge!(crate::telemetry::names::CONNECTIONS).set(table.open.len() as f64);
    }
}

/// A request in flight on a connection (held by its response body).
pub struct InFlight {
    connections: Arc<Connections>,
    id: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.connections.update(self.id, |open| {
            open.in_flight = open.in_flight.saturating_sub(1);
            if open.in_flight == 0 {
                open.idle_since = Instant::now();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds {
        total: 10,
        per_address: 4,
        reserve: 2,
    };

    fn load(total: usize, of_address: usize, address_idle: bool, any_idle: bool) -> Load {
        Load {
            total,
            reserved: 0,
            of_address,
            address_has_idle: address_idle,
            any_idle,
            exempt: false,
        }
    }

    #[test]
    fn admission_table() {
        use Decision::*;
        let cases = [
            (load(0, 0, false, false), Accept),
            (load(9, 3, false, false), Accept),
            (load(5, 4, true, true), ShedFromAddress),
            (load(5, 4, false, true), Refuse),
            (load(10, 1, false, true), ShedAny),
            (load(10, 1, true, true), ShedAny),
            (load(10, 1, false, false), Reserve),
            (
                Load {
                    reserved: 2,
                    ..load(10, 1, false, false)
                },
                Refuse,
            ),
            (
                Load {
                    exempt: true,
                    ..load(5, 9, false, false)
                },
                Accept,
            ),
            (
                Load {
                    exempt: true,
                    ..load(10, 10, false, false)
                },
                Reserve,
            ),
        ];
        for (load, want) in cases {
            assert_eq!(decide(load, BOUNDS), want, "{load:?}");
        }
    }

    #[test]
    fn the_longest_idle_connection_gives_way_and_busy_ones_never_do() {
        let table = Connections::new(BOUNDS, |_| false);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let tickets: Vec<Ticket> = (0..4)
            .map(|_| match table.admit(a) {
                Admitted::Serve(t) => t,
                Admitted::Refused => panic!("room for four"),
            })
            .collect();
        let busy: Vec<InFlight> = tickets[1..].iter().map(Ticket::request).collect();
        let Admitted::Serve(fifth) = table.admit(a) else {
            panic!("the idle one gives way");
        };
        assert!(tickets[0].close.is_cancelled(), "the idle one was closed");
        assert!(tickets[1..].iter().all(|t| !t.close.is_cancelled()));
        let _busy_fifth = fifth.request();
        assert!(
            matches!(table.admit(a), Admitted::Refused),
            "every connection of the address is busy"
        );
        drop(busy);
        assert!(matches!(table.admit(a), Admitted::Serve(_)));
    }

    #[test]
    fn idle_connections_are_closed_after_the_idle_timeout() {
        let table = Connections::new(BOUNDS, |_| false);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let Admitted::Serve(idle) = table.admit(a) else {
            panic!()
        };
        let Admitted::Serve(busy) = table.admit(a) else {
            panic!()
        };
        let _request = busy.request();
        table.close_idle(Duration::ZERO);
        assert!(idle.close.is_cancelled());
        assert!(!busy.close.is_cancelled());
        assert_eq!(table.count(), 1);
    }
}
