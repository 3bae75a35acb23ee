//! A small client of ssh-agent (the protocol of draft-ietf-sshm-ssh-agent): the two requests
//! runbook needs, the agent's keys and a signature by one of them, over the Unix socket
//! `SSH_AUTH_SOCK` names. The maintained client crates bring a second copy of the SSH and
//! RustCrypto stack (ssh-key 0.6); these two messages are a few dozen lines.

use ssh_key::encoding::Decode;
use ssh_key::{PublicKey, Signature};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

const FAILURE: u8 = 5;
const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;
/// Sign with `rsa-sha2-512` (an RSA key's SHA-1 signatures are refused by SSHSIG).
const RSA_SHA2_512: u32 = 4;
/// The largest answer read: an agent with a hundred RSA keys stays far below it.
const MAX_MESSAGE: usize = 256 * 1024;

/// A connection to a running ssh-agent.
pub struct Agent {
    stream: UnixStream,
}

impl Agent {
    /// Connects to the agent at `socket` (the value of `SSH_AUTH_SOCK`).
    pub fn connect(socket: &Path) -> Result<Agent, String> {
        let stream = UnixStream::connect(socket)
            .map_err(|e| format!("cannot reach ssh-agent at {}: {e}", socket.display()))?;
        // A confirmation prompt (`ssh-add -c`) may wait for a person; a dead agent may not.
        let limit = Some(Duration::from_secs(120));
        let _ = stream.set_read_timeout(limit);
        let _ = stream.set_write_timeout(limit);
        Ok(Agent { stream })
    }

    /// The keys the agent holds (keys it holds in a form runbook cannot read are left out).
    pub fn identities(&mut self) -> Result<Vec<PublicKey>, String> {
        let answer = self.request(REQUEST_IDENTITIES, &[])?;
        let mut r = Reader(&answer);
        let count = r.u32()?;
        let mut keys = Vec::new();
        for _ in 0..count {
            let blob = r.string()?;
            let comment = r.string()?;
            if let Ok(mut key) = PublicKey::from_bytes(blob) {
                key.set_comment(String::from_utf8_lossy(comment).into_owned());
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// The agent's signature of `data` with `key`.
    pub fn sign(&mut self, key: &PublicKey, data: &[u8]) -> Result<Signature, String> {
        let blob = key.to_bytes().map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        put_string(&mut body, &blob);
        put_string(&mut body, data);
        let flags = if matches!(key.algorithm(), ssh_key::Algorithm::Rsa { .. }) {
            RSA_SHA2_512
        } else {
            0
        };
        body.extend(flags.to_be_bytes());
        let answer = self.request(SIGN_REQUEST, &body)?;
        let mut r = Reader(&answer);
        let mut sig = r.string()?;
        Signature::decode(&mut sig)
            .map_err(|e| format!("ssh-agent sent a signature runbook cannot read: {e}"))
    }

    /// Sends one request and reads its answer, which must be of the type that answers it.
    fn request(&mut self, kind: u8, body: &[u8]) -> Result<Vec<u8>, String> {
        let mut msg = Vec::with_capacity(body.len() + 5);
        let len = u32::try_from(body.len() + 1).map_err(|_| "request too large".to_owned())?;
        msg.extend(len.to_be_bytes());
        msg.push(kind);
        msg.extend(body);
        let io = |e: std::io::Error| format!("ssh-agent did not answer: {e}");
        self.stream.write_all(&msg).map_err(io)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).map_err(io)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_MESSAGE {
            return Err(format!("ssh-agent sent a message of {len} bytes"));
        }
        let mut answer = vec![0u8; len];
        self.stream.read_exact(&mut answer).map_err(io)?;
        let expected = if kind == SIGN_REQUEST {
            SIGN_RESPONSE
        } else {
            IDENTITIES_ANSWER
        };
        match answer[0] {
            t if t == expected => Ok(answer.split_off(1)),
            FAILURE if kind == SIGN_REQUEST => Err(
                "ssh-agent refused to sign (the key may need a confirmation that was declined, or it is no longer loaded)"
                    .to_owned(),
            ),
            t => Err(format!("ssh-agent answered with message type {t}")),
        }
    }
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend((bytes.len() as u32).to_be_bytes());
    out.extend(bytes);
}

/// Reads the agent's wire types from an answer, never past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Result<u32, String> {
        let (head, rest) = self
            .0
            .split_first_chunk::<4>()
            .ok_or_else(|| "ssh-agent's answer is cut short".to_owned())?;
        self.0 = rest;
        Ok(u32::from_be_bytes(*head))
    }

    fn string(&mut self) -> Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        if len > self.0.len() {
            return Err("ssh-agent's answer is cut short".to_owned());
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(s)
    }
}
