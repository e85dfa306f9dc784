//! The ABCI socket server: one blocking thread per CometBFT connection,
//! varint-length-delimited protobuf frames, dispatch through
//! [`tendermint_abci::Application`].
//!
//! Why not `tendermint_abci::Server`: it writes and flushes every response
//! on its own, so a recheck of thousands of mempool transactions costs one
//! TCP segment (and one wake-up of CometBFT's reader) per transaction. Here
//! responses are buffered and written when CometBFT asks (`Flush`) or when
//! no request is waiting to be read, which is never later than the moment
//! this thread would block: the client never waits on a response it cannot
//! get.

use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;

use prost::Message;
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{request, response, Request, Response};

/// Largest request accepted: CometBFT's own cap on a block (100 MiB) plus
/// framing. A longer length prefix is a broken or hostile peer.
pub const MAX_FRAME: u64 = 104_857_600 + 1_048_576;

const BUFFER: usize = 1 << 20;

/// A bound ABCI listener.
pub struct AbciServer<A> {
    listener: TcpListener,
    app: A,
}

impl<A: Application> AbciServer<A> {
    pub fn bind(addr: SocketAddr, app: A) -> io::Result<Self> {
        Ok(AbciServer {
            listener: TcpListener::bind(addr)?,
            app,
        })
    }

    #[cfg(test)]
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until the listener fails; each gets a thread.
    pub fn listen(self) -> io::Result<()> {
        loop {
            let (stream, peer) = self.listener.accept()?;
            let app = self.app.clone();
            thread::Builder::new().name("abci".into()).spawn(move || {
                tracing::info!(%peer, "ABCI connection");
                match serve(stream, &app) {
                    Ok(()) => tracing::info!(%peer, "ABCI connection closed"),
                    Err(error) => tracing::error!(%peer, %error, "ABCI connection failed"),
                }
            })?;
        }
    }
}

/// Serves one connection until the peer closes it.
fn serve<A: Application>(stream: TcpStream, app: &A) -> io::Result<()> {
    // Responses are batched by hand; Nagle would only add delay.
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(BUFFER, stream.try_clone()?);
    let mut writer = BufWriter::with_capacity(BUFFER, stream);
    let mut frame = Vec::new();
    let mut out = Vec::new();
    loop {
        if reader.buffer().is_empty() {
            // About to wait for the socket: send what we owe first.
            writer.flush()?;
        }
        if !read_frame(&mut reader, &mut frame)? {
            writer.flush()?;
            return Ok(());
        }
        let request = Request::decode(frame.as_slice()).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("undecodable ABCI request: {error}"),
            )
        })?;
        let flush = matches!(request.value, Some(request::Value::Flush(_)));
        let response = dispatch(app, request)?;
        out.clear();
        response
            .encode_length_delimited(&mut out)
            .map_err(|error| io::Error::other(format!("encoding ABCI response: {error}")))?;
        writer.write_all(&out)?;
        if flush {
            writer.flush()?;
        }
    }
}

/// Calls the application method `request` names.
fn dispatch<A: Application>(app: &A, request: Request) -> io::Result<Response> {
    use request::Value as Q;
    use response::Value as R;
    let Some(value) = request.value else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "ABCI request without a method",
        ));
    };
    let value = match value {
        Q::Echo(r) => R::Echo(app.echo(r)),
        Q::Flush(_) => R::Flush(app.flush()),
        Q::Info(r) => R::Info(app.info(r)),
        Q::InitChain(r) => R::InitChain(app.init_chain(r)),
        Q::Query(r) => R::Query(app.query(r)),
        Q::CheckTx(r) => R::CheckTx(app.check_tx(r)),
        Q::Commit(_) => R::Commit(app.commit()),
        Q::ListSnapshots(_) => R::ListSnapshots(app.list_snapshots()),
        Q::OfferSnapshot(r) => R::OfferSnapshot(app.offer_snapshot(r)),
        Q::LoadSnapshotChunk(r) => R::LoadSnapshotChunk(app.load_snapshot_chunk(r)),
        Q::ApplySnapshotChunk(r) => R::ApplySnapshotChunk(app.apply_snapshot_chunk(r)),
        Q::PrepareProposal(r) => R::PrepareProposal(app.prepare_proposal(r)),
        Q::ProcessProposal(r) => R::ProcessProposal(app.process_proposal(r)),
        Q::ExtendVote(r) => R::ExtendVote(app.extend_vote(r)),
        Q::VerifyVoteExtension(r) => R::VerifyVoteExtension(app.verify_vote_extension(r)),
        Q::FinalizeBlock(r) => R::FinalizeBlock(app.finalize_block(r)),
    };
    Ok(Response { value: Some(value) })
}

/// Reads one length-delimited frame into `frame`; `false` on a clean end
/// of stream before its first byte.
fn read_frame<R: BufRead>(reader: &mut R, frame: &mut Vec<u8>) -> io::Result<bool> {
    let mut len: u64 = 0;
    let mut shift = 0u32;
    loop {
        let mut byte = [0u8; 1];
        match reader.read(&mut byte)? {
            0 if shift == 0 => return Ok(false),
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a length prefix",
                ))
            }
            _ => {}
        }
        len |= u64::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "length prefix longer than 10 bytes",
            ));
        }
    }
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the {MAX_FRAME}-byte limit"),
        ));
    }
    frame.clear();
    // `len <= MAX_FRAME` fits in usize on every supported target.
    frame.resize(usize::try_from(len).unwrap_or(usize::MAX), 0);
    reader.read_exact(frame)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tendermint_proto::v0_38::abci as pb;

    /// Every method at its default (echo returns its message).
    #[derive(Clone)]
    struct Defaults;
    impl Application for Defaults {}

    fn start() -> SocketAddr {
        let server = AbciServer::bind("127.0.0.1:0".parse().unwrap(), Defaults).unwrap();
        let addr = server.local_addr().unwrap();
        thread::spawn(move || server.listen());
        addr
    }

    fn send(stream: &mut TcpStream, value: request::Value) {
        let mut out = Vec::new();
        Request { value: Some(value) }
            .encode_length_delimited(&mut out)
            .unwrap();
        stream.write_all(&out).unwrap();
    }

    fn receive(reader: &mut BufReader<TcpStream>) -> response::Value {
        let mut frame = Vec::new();
        assert!(read_frame(reader, &mut frame).unwrap());
        pb::Response::decode(frame.as_slice())
            .unwrap()
            .value
            .unwrap()
    }

    /// One request at a time, as CometBFT's synchronous calls send them
    /// (request, then flush): each is answered without waiting for more.
    #[test]
    fn answers_request_then_flush() {
        let addr = start();
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        for i in 0..50 {
            send(
                &mut stream,
                request::Value::Echo(pb::RequestEcho {
                    message: i.to_string(),
                }),
            );
            send(&mut stream, request::Value::Flush(pb::RequestFlush {}));
            match receive(&mut reader) {
                response::Value::Echo(echo) => assert_eq!(echo.message, i.to_string()),
                other => panic!("{other:?}"),
            }
            assert!(matches!(receive(&mut reader), response::Value::Flush(_)));
        }
        // A request without a flush is answered too (the server flushes
        // before it would block).
        send(
            &mut stream,
            request::Value::Info(pb::RequestInfo::default()),
        );
        assert!(matches!(receive(&mut reader), response::Value::Info(_)));
    }

    /// A request without a method ends the connection.
    #[test]
    fn empty_request_closes_the_connection() {
        let addr = start();
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut out = Vec::new();
        Request { value: None }
            .encode_length_delimited(&mut out)
            .unwrap();
        stream.write_all(&out).unwrap();
        let mut reader = BufReader::new(stream);
        let mut frame = Vec::new();
        assert!(!read_frame(&mut reader, &mut frame).unwrap());
    }

    /// Many requests in one write (as CometBFT's async client sends
    /// rechecks), then a flush: every response comes back, in order.
    #[test]
    fn pipelined_requests_are_answered_in_order() {
        let addr = start();
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut batch = Vec::new();
        for i in 0..1000 {
            let request = Request {
                value: Some(request::Value::Echo(pb::RequestEcho {
                    message: i.to_string(),
                })),
            };
            request.encode_length_delimited(&mut batch).unwrap();
        }
        Request {
            value: Some(request::Value::Flush(pb::RequestFlush {})),
        }
        .encode_length_delimited(&mut batch)
        .unwrap();
        stream.write_all(&batch).unwrap();
        let mut reader = BufReader::new(stream);
        let mut frame = Vec::new();
        for i in 0..1000 {
            assert!(read_frame(&mut reader, &mut frame).unwrap());
            let response = pb::Response::decode(frame.as_slice()).unwrap();
            match response.value {
                Some(pb::response::Value::Echo(echo)) => assert_eq!(echo.message, i.to_string()),
                other => panic!("response {i}: {other:?}"),
            }
        }
        assert!(read_frame(&mut reader, &mut frame).unwrap());
        let response = pb::Response::decode(frame.as_slice()).unwrap();
        assert!(matches!(
            response.value,
            Some(pb::response::Value::Flush(_))
        ));
    }

    #[test]
    fn bad_frames_are_refused() {
        let mut frame = Vec::new();
        // 11 continuation bytes: not a u64 varint.
        let mut long = io::Cursor::new(vec![0xffu8; 11]);
        assert!(read_frame(&mut long, &mut frame).is_err());
        // A prefix over the limit.
        let mut big = Vec::new();
        prost::encoding::encode_varint(MAX_FRAME + 1, &mut big);
        assert!(read_frame(&mut io::Cursor::new(big), &mut frame)
            .unwrap_err()
            .to_string()
            .contains("limit"));
        // Truncated inside the prefix and inside the body.
        assert!(read_frame(&mut io::Cursor::new(vec![0x80u8]), &mut frame).is_err());
        assert!(read_frame(&mut io::Cursor::new(vec![5u8, 1, 2]), &mut frame).is_err());
        // Clean end of stream.
        assert!(!read_frame(&mut io::Cursor::new(Vec::new()), &mut frame).unwrap());
    }
}
