//! Issue 20, data that must not be lost: an interrupted destroy followed by apply keeps a
//! funded account's address and pays nothing twice; a joined operator's destroy is guarded
//! and archives; damaged state and chain data have a way back. Real geth 1.13.15.

use crate::support::*;
use consort::rpc::{self, BlockId, RpcClient};
use consort::state::{State, StateDir};
use consort::topology::Wei;
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

struct Net {
    handle: NetworkHandle,
    dir: PathBuf,
}

impl Net {
    fn new(name: &str, chain_id: u64, extra_members: &str) -> Net {
        let handle = NetworkHandle::new(name);
        let dir = handle.dir.path().canonicalize().unwrap();
        let text = format!(
            "network:
  name: {name}
  chain_id: {chain_id}
  consensus:
    clique: {{ period: 1, epoch: 30000 }}
  funding_account: contoso/treasury
members:
  - name: contoso
    validators: 2
    tx_nodes: 1
    accounts:
      - name: treasury
        balance: 5000 ether
  - name: fabrikam
    validators: 1
{extra_members}provider:
  local:
    base_port: {}
",
            port_base()
        );
        std::fs::write(dir.join("consort.yaml"), text).unwrap();
        Net { handle, dir }
    }
    fn file(&self) -> PathBuf {
        self.dir.join("consort.yaml")
    }
    fn sd(&self) -> StateDir {
        self.handle.state_dir()
    }
    fn state(&self) -> State {
        self.sd().load().unwrap().expect("state")
    }
    fn ok(&self, args: &[&str]) -> String {
        consort_ok(&self.dir, args)
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        consort(&self.dir, args)
    }
    fn address(&self, resource: &str) -> String {
        self.state()
            .output_str(resource, "address")
            .unwrap_or_else(|| panic!("{resource} has no address in state"))
            .to_string()
    }
    /// The IPC of a running node of state.
    fn ipc(&self, node: &str) -> RpcClient {
        consort::provider::local::NodeOutputs::from_state(&self.state(), node)
            .unwrap_or_else(|| panic!("{node} not in state"))
            .control()
            .with_timeout(Duration::from_secs(5))
    }
    fn balance(&self, node: &str, address: &str) -> u128 {
        let a = rpc::parse_address(address).unwrap();
        self.ipc(node)
            .eth_get_balance(&a, BlockId::Latest)
            .unwrap()
    }
}

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// Every key file under `dir` (archived or not) of the account or signer at `rel`.
fn archived(sd: &StateDir, rel: &str) -> Vec<PathBuf> {
    std::fs::read_dir(sd.archive_dir())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join(rel))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// Item 1: `destroy` killed right after it archived a post-genesis funded account, then
/// `apply`: plan restores the account's key (no new address), apply pays nothing twice
/// and the funding account's balance is what it was.
#[test]
fn a_killed_destroy_then_apply_keeps_the_funded_accounts_address_and_pays_once() {
    let net = Net::new("rekeyed", 747401, "");
    net.ok(&["apply", "--yes"]);
    // delta/pay joins after genesis: funded by a transfer.
    let yaml = std::fs::read_to_string(net.file()).unwrap();
    std::fs::write(
        net.file(),
        yaml.replace(
            "provider:",
            "  - name: delta\n    accounts:\n      - name: pay\n        balance: 5 ether\nprovider:",
        ),
    )
    .unwrap();
    net.ok(&["apply", "--yes"]);
    assert!(net.state().resources.contains_key("fund.delta.pay"));
    let pay = net.address("account.delta.pay");
    let treasury = net.address("account.contoso.treasury");
    poll("delta/pay funded", WAIT, || {
        Ok((net.balance("contoso-validator-0", &pay) == 5 * Wei::ETHER).then_some(()))
    });
    let treasury_before = net.balance("contoso-validator-0", &treasury);

    let landed = signal_at_event(
        &net.dir,
        &["destroy", "--yes"],
        "  - account.delta.pay (",
        libc::SIGKILL,
    );
    assert!(landed.stdout.contains("- account.delta.pay ("));
    // The fault landed where it claims: the account is out of state, its key archived, and
    // a validator still holds the chain.
    let st = net.state();
    assert!(!st.resources.contains_key("account.delta.pay"));
    assert!(!archived(&net.sd(), "keys/accounts/delta/pay").is_empty());
    assert!(
        st.resources.contains_key("node.contoso-validator-0")
            || st.resources.contains_key("node.contoso-validator-1"),
        "the destroy went past every validator before the kill: {:?}",
        st.resources.keys().collect::<Vec<_>>()
    );

    let plan = net.ok(&["plan"]);
    let line = plan
        .lines()
        .find(|l| l.contains("+ account.delta.pay"))
        .unwrap_or_else(|| panic!("no account.delta.pay line:\n{plan}"));
    assert!(line.contains(&format!("restores its earlier key {pay}")), "{line}");

    let out = net.ok(&["apply", "--yes"]);
    assert!(out.contains("is healthy"), "{out}");
    assert_eq!(net.address("account.delta.pay"), pay, "the account was re-keyed");
    let node = "contoso-validator-0";
    assert_eq!(net.balance(node, &pay), 5 * Wei::ETHER);
    assert_eq!(
        net.balance(node, &treasury),
        treasury_before,
        "the funding account paid again"
    );
    let again = net.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));

    // A finished destroy deletes the archive with everything else.
    net.ok(&["destroy", "--yes"]);
    assert!(!net.handle.base.exists(), "destroy left {}", net.handle.base.display());
}
