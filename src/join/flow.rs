//! What `invite`, `join` and `admit` do with the bundles: build them from a running
//! network and check them against it. No I/O beyond the state directory and the checks
//! that enodes answer; the CLI renders the results.

use super::bundle::*;
use super::{refused, sign, JoinError};
use crate::crypto::{keystore, Address, SecretKey};
use crate::state::Kind;
use crate::state::{GenesisRecord, ResourceState, State, StateDir};
use crate::topology::edit::{NewExternal, NewMember};
use crate::topology::{Role, Topology, Wei};
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long an enode's TCP port may take to accept a connection at `admit`.
const ENODE_TIMEOUT: Duration = Duration::from_secs(3);

/// What `consort invite NAME` asks for.
#[derive(Debug, Clone)]
pub struct InviteSpec {
    pub name: String,
    pub validators: u32,
    pub tx_nodes: u32,
    pub accounts: Vec<(String, Wei)>,
    /// Seconds the invitation stays valid.
    pub valid_for: u64,
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where an operator keeps the invitations it issued (`admit` checks requests against
/// them): `<state dir>/invitations/<id>.json`.
pub fn invitations_dir(sd: &StateDir) -> PathBuf {
    sd.root.join("invitations")
}

/// The members of the network as this operator knows them: its own (signers voted in or
/// in genesis, nodes' enodes from state) and the external ones of its topology.
fn known_members(topo: &Topology, st: &State) -> Vec<InviteMember> {
    let nodes = topo.nodes();
    topo.members
        .iter()
        .map(|m| match &m.external {
            Some(e) => InviteMember {
                name: m.name.clone(),
                validators: m.validators,
                tx_nodes: m.tx_nodes,
                signers: e.signers.clone(),
                enodes: e.enodes.clone(),
            },
            None => {
                let own: Vec<_> = nodes.iter().filter(|n| n.member == m.name).collect();
                InviteMember {
                    name: m.name.clone(),
                    validators: m.validators,
                    tx_nodes: m.tx_nodes,
                    signers: own
                        .iter()
                        .filter(|n| n.role == Role::Validator)
                        .filter_map(|n| {
                            st.output_str(&format!("key.signer.{}", n.name), "address")
                                .map(str::to_string)
                        })
                        .collect(),
                    enodes: own
                        .iter()
                        .filter_map(|n| {
                            st.output_str(&format!("node.{}", n.name), "enode")
                                .map(str::to_string)
                        })
                        .collect(),
                }
            }
        })
        .collect()
}

/// Decrypts the signer key of validator `node` from its keystore and password file.
fn signer_key(st: &State, node: &str) -> Result<SecretKey, JoinError> {
    let addr = format!("key.signer.{node}");
    let file = |k: &str| {
        st.output_str(&addr, k)
            .map(PathBuf::from)
            .ok_or_else(|| refused(format!("{addr} has no {k} in state; run `consort apply`")))
    };
    let (ks, pw) = (file("keystore")?, file("password_file")?);
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| refused(format!("cannot read {}: {e}", p.display())))
    };
    let json: Value = serde_json::from_str(&read(&ks)?)
        .map_err(|e| refused(format!("{} is not a keystore: {e}", ks.display())))?;
    keystore::decrypt(&json, read(&pw)?.trim_end_matches(['\n', '\r']))
        .map_err(|e| refused(format!("{}: {e}", ks.display())))
}

/// `consort invite`: the invitation for `spec`, signed by this operator's first validator
/// that is a signer.
pub fn make_invite(
    topo: &Topology,
    st: &State,
    spec: &InviteSpec,
    now: u64,
) -> Result<Invite, JoinError> {
    crate::topology::check_name(&spec.name)
        .map_err(|why| refused(format!("invalid member name {:?}: {why}", spec.name)))?;
    if topo.member(&spec.name).is_some() {
        return Err(refused(format!(
            "{} is already a member of network {}; invite another name",
            spec.name, topo.network.name
        )));
    }
    let genesis = st
        .genesis
        .as_ref()
        .filter(|g| !g.hash.is_empty())
        .ok_or_else(|| {
            refused(format!(
                "network {} has no running genesis yet; `consort apply` it before inviting",
                topo.network.name
            ))
        })?;
    let signer_node = topo
        .nodes()
        .into_iter()
        .find(|n| {
            n.role == Role::Validator && st.resources.contains_key(&format!("signer.{}", n.name))
        })
        .ok_or_else(|| {
            refused("this operator has no validator that is a signer to sign the invitation with")
        })?;
    let key = signer_key(st, &signer_node.name)?;
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    let c = &topo.network;
    let mut invite = Invite {
        format: INVITE_FORMAT.into(),
        invitation_id: hex::encode(id),
        expires_at: now + spec.valid_for,
        network: InviteNetwork {
            name: c.name.clone(),
            chain_id: c.chain_id,
            clique_period: c.clique.period,
            clique_epoch: c.clique.epoch,
            gas_limit: c.gas_limit,
            genesis: genesis.json.clone(),
            genesis_hash: genesis.hash.clone(),
        },
        members: known_members(topo, st),
        invited: Invited {
            name: spec.name.clone(),
            validators: spec.validators,
            tx_nodes: spec.tx_nodes,
            accounts: spec
                .accounts
                .iter()
                .map(|(n, w)| InvitedAccount {
                    name: n.clone(),
                    balance: w.0.to_string(),
                })
                .collect(),
        },
        signed_by: String::new(),
        signature: String::new(),
    };
    sign::sign_invite(&mut invite, &key);
    Ok(invite)
}

/// Keeps an issued invitation for `admit` (nothing secret in it).
pub fn store_invite(sd: &StateDir, invite: &Invite) -> Result<PathBuf, JoinError> {
    let dir = invitations_dir(sd);
    std::fs::create_dir_all(&dir).map_err(|e| JoinError::File {
        path: dir.display().to_string(),
        message: format!("cannot create: {e}"),
    })?;
    let path = dir.join(format!("{}.json", invite.invitation_id));
    write(&path, invite)?;
    Ok(path)
}

/// The joiner's checks of an invitation: its signature (by a signer it lists), expiry.
pub fn check_invite(invite: &Invite, now: u64) -> Result<(), JoinError> {
    let by = sign::verify_invite(invite)?;
    let listed = invite
        .members
        .iter()
        .flat_map(|m| &m.signers)
        .any(|s| s.parse::<Address>().ok() == Some(by));
    if !listed {
        return Err(refused(format!(
            "the invitation is signed by {by}, which is no signer of the members it lists; \
             it was not issued by an operator of this network — ask for a new one"
        )));
    }
    if now >= invite.expires_at {
        return Err(refused(format!(
            "invitation {} expired {} ago; ask the network's operator for a new one \
             (`consort invite {}`)",
            invite.invitation_id,
            human_secs(now - invite.expires_at),
            invite.invited.name
        )));
    }
    crate::topology::check_name(&invite.invited.name)
        .map_err(|why| refused(format!("invited name {:?}: {why}", invite.invited.name)))?;
    Ok(())
}

fn human_secs(s: u64) -> String {
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// The joiner's topology file: the invitation's network, the existing members as external
/// ones, its own member, and a local provider on `address`. Serialised, never formatted:
/// every name and string in it comes from the invitation, a file someone else wrote.
pub fn joiner_topology(invite: &Invite, address: &str, base_port: Option<u16>) -> String {
    let n = &invite.network;
    let mut members: Vec<Value> = invite
        .members
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "validators": m.validators,
                "tx_nodes": m.tx_nodes,
                "external": {"signers": m.signers, "enodes": m.enodes},
            })
        })
        .collect();
    let me = &invite.invited;
    let mut mine = json!({
        "name": me.name,
        "validators": me.validators,
        "tx_nodes": me.tx_nodes,
    });
    if !me.accounts.is_empty() {
        let accounts: Vec<Value> = me
            .accounts
            .iter()
            .map(|a| {
                let wei: u128 = a.balance.parse().unwrap_or(0);
                json!({"name": a.name, "balance": Wei(wei).to_string()})
            })
            .collect();
        mine["accounts"] = Value::from(accounts);
    }
    members.push(mine);
    let mut local = json!({ "address": address });
    if let Some(p) = base_port {
        local["base_port"] = Value::from(p);
    }
    let doc = json!({
        "network": {
            "name": n.name,
            "chain_id": n.chain_id,
            "consensus": {"clique": {"period": n.clique_period, "epoch": n.clique_epoch}},
            "gas_limit": n.gas_limit,
        },
        "members": members,
        "provider": {"local": local},
    });
    let body = serde_yaml::to_string(&doc).expect("a JSON value serialises as YAML");
    format!(
        "# Joined with invitation {} (`consort join`). The members marked `external` are run\n\
         # by other operators: this state holds none of their keys and runs none of their nodes.\n{body}",
        // Hex by the invitation's format; kept to hex here so the comment stays one line.
        invite
            .invitation_id
            .chars()
            .filter(char::is_ascii_hexdigit)
            .collect::<String>(),
    )
}

/// Seeds the joiner's new state with the invitation's genesis: the chain already exists,
/// so genesis is recorded as fixed (no signer or account of ours in it) and never created.
pub fn seed_state(sd: &StateDir, topo: &Topology, invite: &Invite) -> Result<(), JoinError> {
    if sd.state_file().exists() {
        return Err(refused(format!(
            "{} exists: this directory already runs network {}; join from a new directory \
             (or `consort destroy` the old network first)",
            sd.state_file().display(),
            sd.network
        )));
    }
    let io = |p: &Path, e: std::io::Error| JoinError::File {
        path: p.display().to_string(),
        message: format!("cannot write: {e}"),
    };
    sd.create_root().map_err(|e| JoinError::File {
        path: sd.root.display().to_string(),
        message: e.to_string(),
    })?;
    let path = sd.root.join("genesis.json");
    let mut text = serde_json::to_vec_pretty(&invite.network.genesis).expect("genesis");
    text.push(b'\n');
    crate::state::fsutil::write_atomic(&path, &text, 0o644).map_err(|e| io(&path, e))?;
    let joined = sd.joined_file();
    let id = format!("{}\n", invite.invitation_id);
    crate::state::fsutil::write_atomic(&joined, id.as_bytes(), 0o644)
        .map_err(|e| io(&joined, e))?;
    let c = &topo.network;
    let mut st = State::new(&c.name, topo.provider.kind());
    st.genesis = Some(GenesisRecord {
        json: invite.network.genesis.clone(),
        hash: invite.network.genesis_hash.clone(),
    });
    st.resources.insert(
        "genesis".into(),
        ResourceState {
            kind: Kind::Genesis,
            attrs: crate::plan::desired::genesis_attrs(c),
            outputs: json!({
                "file": path.to_string_lossy(),
                "funding_account": null,
                "signers": [],
                "accounts": {},
                "joined": invite.invitation_id,
            }),
            deps: vec![],
        },
    );
    sd.save(&mut st).map_err(|e| refused(e.to_string()))
}

/// `join-request.json` for this operator's member `name`: its enodes, signer addresses and
/// accounts from state, signed by each signer key.
pub fn make_request(
    topo: &Topology,
    st: &State,
    invite: &Invite,
) -> Result<JoinRequest, JoinError> {
    let name = &invite.invited.name;
    let member = topo
        .member(name)
        .ok_or_else(|| refused(format!("member {name} is not in the topology")))?;
    let nodes: Vec<_> = topo
        .nodes()
        .into_iter()
        .filter(|n| &n.member == name)
        .collect();
    let missing =
        |what: String| refused(format!("{what} is not in state yet; run `consort apply`"));
    let mut enodes = Vec::new();
    let mut signers = Vec::new();
    let mut keys = Vec::new();
    for n in &nodes {
        enodes.push(
            st.output_str(&format!("node.{}", n.name), "enode")
                .ok_or_else(|| missing(format!("node.{}", n.name)))?
                .to_string(),
        );
        if n.role == Role::Validator {
            signers.push(
                st.output_str(&format!("key.signer.{}", n.name), "address")
                    .ok_or_else(|| missing(format!("key.signer.{}", n.name)))?
                    .to_string(),
            );
            keys.push(signer_key(st, &n.name)?);
        }
    }
    let accounts = member
        .accounts
        .iter()
        .map(|a| {
            let addr = format!("account.{name}.{}", a.name);
            Ok(RequestAccount {
                name: a.name.clone(),
                address: st
                    .output_str(&addr, "address")
                    .ok_or_else(|| missing(addr.clone()))?
                    .to_string(),
                balance: a.balance.0.to_string(),
            })
        })
        .collect::<Result<Vec<_>, JoinError>>()?;
    let mut request = JoinRequest {
        format: REQUEST_FORMAT.into(),
        invitation_id: invite.invitation_id.clone(),
        network: RequestNetwork {
            name: topo.network.name.clone(),
            chain_id: topo.network.chain_id,
            genesis_hash: invite.network.genesis_hash.clone(),
        },
        member: RequestMember {
            name: name.clone(),
            validators: member.validators,
            tx_nodes: member.tx_nodes,
            enodes,
            signers,
            accounts,
        },
        signatures: vec![],
    };
    let refs: Vec<&SecretKey> = keys.iter().collect();
    sign::sign_request(&mut request, &refs);
    Ok(request)
}

/// The invitation a request names: one this operator issued (`invitations/`), or
/// `given` (an invitation another operator of the network issued, checked by its
/// signature: its signer must be a signer this operator knows).
pub fn find_invitation(
    sd: &StateDir,
    topo: &Topology,
    st: &State,
    id: &str,
    given: Option<&Path>,
) -> Result<Invite, JoinError> {
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) || id.len() != 32 {
        return Err(refused(format!(
            "the join request's invitation id {id:?} is not one consort issues"
        )));
    }
    let own = invitations_dir(sd).join(format!("{id}.json"));
    if own.exists() {
        return read(&own, INVITE_FORMAT);
    }
    let Some(path) = given else {
        return Err(refused(format!(
            "this operator issued no invitation {id} (none in {}); if another operator of the \
             network invited this member, pass its invitation: `consort admit REQUEST --invite \
             invite.json`",
            invitations_dir(sd).display()
        )));
    };
    let invite: Invite = read(path, INVITE_FORMAT)?;
    if invite.invitation_id != id {
        return Err(refused(format!(
            "{} is invitation {}, but the join request answers invitation {id}",
            path.display(),
            invite.invitation_id
        )));
    }
    let by = sign::verify_invite(&invite)?;
    let known = known_members(topo, st)
        .iter()
        .flat_map(|m| m.signers.clone())
        .any(|s| s.parse::<Address>().ok() == Some(by));
    if !known {
        return Err(refused(format!(
            "{} is signed by {by}, which is no signer of network {} this operator knows",
            path.display(),
            topo.network.name
        )));
    }
    Ok(invite)
}

/// `admit`'s checks of a request against the invitation and this network; on success the
/// member to add to the topology (external: no keys).
pub fn check_request(
    request: &JoinRequest,
    invite: &Invite,
    topo: &Topology,
    st: &State,
    now: u64,
) -> Result<NewMember, JoinError> {
    let name = &request.member.name;
    if let Some(m) = topo.member(name) {
        let how = match m.external.as_ref().and_then(|e| e.invitation.as_deref()) {
            Some(id) if id == request.invitation_id => {
                format!("it was admitted with this invitation ({id}) already")
            }
            _ => "a member of that name is in the topology already".to_string(),
        };
        return Err(refused(format!(
            "{name} cannot be admitted: {how}; nothing changed (`consort status` shows it; `consort apply` finishes an interrupted admission)"
        )));
    }
    if now >= invite.expires_at {
        return Err(refused(format!(
            "invitation {} expired {} ago; invite {name} again (`consort invite {name}`)",
            invite.invitation_id,
            human_secs(now - invite.expires_at)
        )));
    }
    let net = &topo.network;
    let genesis_hash = st.genesis.as_ref().map(|g| g.hash.as_str()).unwrap_or("");
    if request.network.name != net.name
        || request.network.chain_id != net.chain_id
        || request.network.genesis_hash != genesis_hash
    {
        return Err(refused(format!(
            "the join request is for network {} (chain {}, genesis {}), but this is network {} \
             (chain {}, genesis {genesis_hash}); admit it on its own network",
            request.network.name,
            request.network.chain_id,
            request.network.genesis_hash,
            net.name,
            net.chain_id
        )));
    }
    let inv = &invite.invited;
    let m = &request.member;
    if m.name != inv.name || m.validators != inv.validators || m.tx_nodes != inv.tx_nodes {
        return Err(refused(format!(
            "invitation {} is for {} with {} validator(s) and {} tx node(s), but the request is \
             for {} with {} and {}",
            invite.invitation_id,
            inv.name,
            inv.validators,
            inv.tx_nodes,
            m.name,
            m.validators,
            m.tx_nodes
        )));
    }
    if m.signers.len() != m.validators as usize
        || m.enodes.len() != (m.validators + m.tx_nodes) as usize
    {
        return Err(refused(format!(
            "the join request of {name} lists {} signer(s) and {} enode(s) for {} validator(s) \
             and {} tx node(s)",
            m.signers.len(),
            m.enodes.len(),
            m.validators,
            m.tx_nodes
        )));
    }
    sign::verify_request(request)?;
    let offered: Vec<(&str, &str)> = inv
        .accounts
        .iter()
        .map(|a| (a.name.as_str(), a.balance.as_str()))
        .collect();
    let asked: Vec<(&str, &str)> = m
        .accounts
        .iter()
        .map(|a| (a.name.as_str(), a.balance.as_str()))
        .collect();
    if offered != asked {
        return Err(refused(format!(
            "the join request asks for accounts {asked:?} but invitation {} offered {offered:?}",
            invite.invitation_id
        )));
    }
    for a in &m.accounts {
        a.address
            .parse::<Address>()
            .map_err(|e| refused(format!("account {} of the join request: {e}", a.name)))?;
    }
    for e in &m.enodes {
        enode_answers(e)?;
    }
    Ok(NewMember {
        name: name.clone(),
        validators: m.validators,
        tx_nodes: m.tx_nodes,
        accounts: m
            .accounts
            .iter()
            .map(|a| {
                let wei: u128 = a.balance.parse().unwrap_or(0);
                (a.name.clone(), Wei(wei).to_string())
            })
            .collect(),
        external: Some(NewExternal {
            signers: m.signers.clone(),
            enodes: m.enodes.clone(),
            invitation: Some(request.invitation_id.clone()),
            account_addresses: m.accounts.iter().map(|a| a.address.clone()).collect(),
        }),
    })
}

/// An enode answers when its TCP port accepts a connection.
fn enode_answers(url: &str) -> Result<(), JoinError> {
    let host_port = url
        .strip_prefix("enode://")
        .and_then(|r| r.split_once('@'))
        .map(|(_, hp)| hp.split('?').next().unwrap_or(hp))
        .filter(|_| crate::rpc::enode_pubkey(url).is_some())
        .ok_or_else(|| refused(format!("{url:?} in the join request is not an enode URL")))?;
    let addr: SocketAddr = host_port.parse().map_err(|_| {
        refused(format!(
            "{url:?}: {host_port:?} is not an IP address and port"
        ))
    })?;
    TcpStream::connect_timeout(&addr, ENODE_TIMEOUT)
        .map(|_| ())
        .map_err(|e| {
            refused(format!(
                "the joiner's node {url} does not answer on {addr} ({e}); its nodes must be \
                 running and reachable from here before it is admitted"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An invitation of network tradelane (member alpha) for member delta.
    fn sample_invite() -> Invite {
        Invite {
            format: INVITE_FORMAT.into(),
            invitation_id: "0f".repeat(16),
            expires_at: 0,
            network: InviteNetwork {
                name: "tradelane".into(),
                chain_id: 707070,
                clique_period: 2,
                clique_epoch: 30000,
                gas_limit: 30_000_000,
                genesis: json!({}),
                genesis_hash: "0x01".into(),
            },
            members: vec![InviteMember {
                name: "alpha".into(),
                validators: 1,
                tx_nodes: 1,
                signers: vec![SecretKey::random().address().to_checksum()],
                enodes: vec![
                    format!("enode://{}@127.0.0.1:30303", "ab".repeat(64)),
                    format!("enode://{}@127.0.0.1:30304", "cd".repeat(64)),
                ],
            }],
            invited: Invited {
                name: "delta".into(),
                validators: 1,
                tx_nodes: 0,
                accounts: vec![InvitedAccount {
                    name: "ops".into(),
                    balance: (10 * Wei::ETHER).to_string(),
                }],
            },
            signed_by: String::new(),
            signature: String::new(),
        }
    }

    #[test]
    fn a_joiner_topology_loads_with_the_founders_external() {
        let invite = sample_invite();
        let text = joiner_topology(&invite, "127.0.0.2", Some(31000));
        let loaded = crate::topology::parse(Path::new("consort.yaml"), text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let t = loaded.topology;
        assert_eq!(t.local_address(), "127.0.0.2");
        assert_eq!(t.external_enodes().len(), 2);
        let names: Vec<String> = t.nodes().into_iter().map(|n| n.name).collect();
        assert_eq!(names, vec!["delta-validator-0"]);
        // The founders' nodes are named as their operator names them, each with its enode,
        // and the peering plan (so our node's peer limit) counts them.
        let ext: Vec<(String, &str)> = t
            .external_nodes()
            .into_iter()
            .map(|(n, u)| (n.name, u))
            .collect();
        assert_eq!(
            ext,
            vec![
                (
                    "alpha-validator-0".to_string(),
                    invite.members[0].enodes[0].as_str()
                ),
                (
                    "alpha-tx-0".to_string(),
                    invite.members[0].enodes[1].as_str()
                ),
            ]
        );
        let all: Vec<String> = t.network_nodes().into_iter().map(|n| n.name).collect();
        assert_eq!(
            all,
            vec!["alpha-validator-0", "alpha-tx-0", "delta-validator-0"]
        );
        let peering = crate::plan::peering::Peering::for_topology(&t);
        assert_eq!(peering.degree("delta-validator-0"), 2);
        assert_eq!(
            t.member("delta").unwrap().accounts[0].balance,
            Wei(10 * Wei::ETHER)
        );
    }

    /// Issue 20 item 14: names from the invitation were formatted into the YAML, so a
    /// name with a newline added members (or anything else) to the joiner's topology.
    #[test]
    fn invitation_strings_are_serialised_not_formatted_into_yaml() {
        let evil = "alpha\n  - name: mallory\n    validators: 9\n    tx_nodes: 0";
        let mut invite = sample_invite();
        invite.network.name = "trade: lane\nprovider: {azure: {}}".into();
        invite.members[0].name = evil.into();
        invite.members[0].signers = vec!["0xab\"\n  - x".into()];
        invite.invited.accounts[0].name = "ops\n        balance: 1000000 ether".into();
        invite.invited.accounts[0].balance = Wei::ETHER.to_string();
        let text = joiner_topology(&invite, "127.0.0.2", None);
        let v: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let members = v["members"].as_array().unwrap();
        assert_eq!(members.len(), 2, "{text}");
        assert_eq!(members[0]["name"], evil, "{text}");
        assert_eq!(members[0]["external"]["signers"][0], "0xab\"\n  - x");
        assert_eq!(members[1]["accounts"][0]["balance"], "1 ether", "{text}");
        assert_eq!(v["network"]["name"], "trade: lane\nprovider: {azure: {}}");
        assert_eq!(v["provider"], json!({"local": {"address": "127.0.0.2"}}));
        // And the topology check refuses such a name with its place.
        let e = crate::topology::parse(Path::new("consort.yaml"), text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("consort.yaml:"), "{e}");
    }
}
