//! An HTTP listener served by a fixed pool of worker threads: the API, the
//! FreeSWITCH file proxy and the IPP printers each run one.
//!
//! tiny_http hands each request to whichever worker calls `recv` first, so
//! a slow request (an upload, a long-running stream) holds one worker and
//! the others keep serving. Stopping lets every worker finish the request
//! it is on; then the listener closes.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

pub struct HttpPool {
    server: Arc<tiny_http::Server>,
    stopping: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    addr: SocketAddr,
}

impl HttpPool {
    /// Serves `listener` from `workers` threads (at least one) named
    /// `name-N`, each calling `serve` for the requests it takes.
    pub fn start<F>(
        listener: TcpListener,
        name: &str,
        workers: usize,
        serve: F,
    ) -> std::io::Result<HttpPool>
    where
        F: Fn(tiny_http::Request) + Send + Sync + 'static,
    {
        let addr = listener.local_addr()?;
        let server = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut pool = HttpPool {
            server: Arc::new(server),
            stopping: Arc::new(AtomicBool::new(false)),
            workers: Vec::new(),
            addr,
        };
        let serve = Arc::new(serve);
        for i in 0..workers.max(1) {
            let (server, stopping, serve) =
                (pool.server.clone(), pool.stopping.clone(), serve.clone());
            // On a spawn failure `pool` is dropped, which stops the workers
            // already started.
            pool.workers.push(
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        while !stopping.load(Ordering::Acquire) {
                            // `recv` fails when `stop` unblocks this thread.
                            if let Ok(request) = server.recv() {
                                serve(request);
                            }
                        }
                    })?,
            );
        }
        Ok(pool)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests and waits for each worker to finish the one it
    /// serves. Calling it again does nothing.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for HttpPool {
    fn drop(&mut self) {
        self.stop();
    }
}
