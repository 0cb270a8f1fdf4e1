//! Creating, updating and deleting the ARM resources of a network (resource group, VNet,
//! NSGs, subnets, NAT gateway, public IPs, NICs, VMs), each guarded by its lineage tag.

use super::*;

impl AzureProvider {
    /// The ARM id of a resource from its kind and attributes (when outputs lack it).
    pub(super) fn arm_id(&self, arm: &Arm, kind: Kind, addr: &str, attrs: &Value) -> String {
        let rg = self.rg();
        let name = attr(attrs, "name");
        match kind {
            Kind::AzureResourceGroup => arm.resource_group_id(rg),
            Kind::AzureVnet => arm.vnet_id(rg, &name),
            Kind::AzureNsg => arm.nsg_id(rg, &name),
            Kind::AzureSubnet => arm.subnet_id(rg, &attr(attrs, "vnet"), &name),
            Kind::AzurePublicIp => arm.public_ip_id(rg, &name),
            Kind::AzureNic => arm.nic_id(rg, &name),
            Kind::AzureVm => arm.vm_id(rg, &name),
            Kind::AzureVault => arm.vault_id(rg, &name),
            Kind::AzureNatGateway => arm.nat_gateway_id(rg, &name),
            _ => addr.to_string(),
        }
    }

    pub(super) fn apply_azure(
        &self,
        ctx: &ApplyCtx,
        change: &Change,
    ) -> Result<Option<ResourceState>, ProviderError> {
        let arm = self.arm()?;
        match change.action {
            Action::Destroy => {
                self.destroy(ctx, &arm, change)?;
                Ok(None)
            }
            Action::Replace => {
                self.destroy(ctx, &arm, change)?;
                self.create(ctx, &arm, change).map(Some)
            }
            Action::Create => self.create(ctx, &arm, change).map(Some),
            Action::Update
                if change.kind == Kind::AzureVm && change.reason.contains("not running") =>
            {
                self.start_vm(ctx, change).map(Some)
            }
            Action::Update if change.kind == Kind::AzureVm => {
                self.update_vm(ctx, &arm, change).map(Some)
            }
            // Network resources: a PUT converges them (also after drift).
            Action::Update => self.create(ctx, &arm, change).map(Some),
        }
    }

    pub(super) fn create(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        change: &Change,
    ) -> Result<ResourceState, ProviderError> {
        let (addr, a, name) = target(change, false);
        let at = arm_err(addr);
        let rg = self.rg();
        let loc = self.config.location.clone();
        let tags = self.apply_tags(ctx);
        // Another deployment's resource of the same name is never adopted or changed.
        if !matches!(
            change.kind,
            Kind::AzureResourceGroup | Kind::AzureSubnet | Kind::AzureSecrets | Kind::AzureVault
        ) {
            self.guard_change(ctx, arm, change, &a)?;
        }
        let outputs = match change.kind {
            Kind::AzureResourceGroup => return self.create_rg(ctx, arm, change),
            Kind::AzureVault => return self.create_vault(ctx, arm, change),
            Kind::AzureSecrets => {
                return self
                    .apply_secrets(ctx, arm, change)?
                    .ok_or_else(|| ProviderError::at(addr, "secrets were not written"))
            }
            Kind::AzureNatGateway => {
                let body = arm::nat::nat_gateway_body(
                    &loc,
                    &arm.public_ip_id(rg, &attr(&a, "public_ip")),
                    &tags,
                );
                let v = self
                    .block_on(arm.put_nat_gateway(rg, &name, &body))
                    .map_err(at)?;
                json!({"id": v["id"].as_str().map(str::to_string).unwrap_or_else(|| arm.nat_gateway_id(rg, &name))})
            }
            Kind::AzureVnet => {
                let v = self
                    .block_on(arm.put_vnet(
                        rg,
                        &VnetSpec {
                            name: name.clone(),
                            location: loc,
                            address_space: attr(&a, "address_space"),
                            tags,
                        },
                    ))
                    .map_err(at)?;
                json!({"id": v.resource.id.unwrap_or_else(|| arm.vnet_id(rg, &name))})
            }
            Kind::AzureNsg => {
                let rules: Vec<RuleSpec> = serde_json::from_value(
                    a.get("rules").cloned().unwrap_or(json!([])),
                )
                .map_err(|e| ProviderError::at(addr, format!("bad rules in the plan: {e}")))?;
                let n = self
                    .block_on(arm.put_nsg(
                        rg,
                        &NsgSpec {
                            name: name.clone(),
                            location: loc,
                            rules,
                            tags,
                        },
                    ))
                    .map_err(at)?;
                json!({"id": n.resource.id.unwrap_or_else(|| arm.nsg_id(rg, &name))})
            }
            Kind::AzureSubnet => {
                let vnet = attr(&a, "vnet");
                let s = self
                    .block_on(
                        arm.put_subnet(
                            rg,
                            &SubnetSpec {
                                vnet: vnet.clone(),
                                name: name.clone(),
                                address_prefix: attr(&a, "address_prefix"),
                                nsg_id: Some(arm.nsg_id(rg, &attr(&a, "nsg"))),
                                nat_gateway_id: a
                                    .get("nat_gateway")
                                    .and_then(Value::as_str)
                                    .map(|n| arm.nat_gateway_id(rg, n)),
                            },
                        ),
                    )
                    .map_err(at)?;
                json!({"id": s.sub_resource.id.unwrap_or_else(|| arm.subnet_id(rg, &vnet, &name))})
            }
            Kind::AzurePublicIp => {
                let p = self
                    .block_on(arm.put_public_ip(
                        rg,
                        &PublicIpSpec {
                            name: name.clone(),
                            location: loc,
                            tags,
                        },
                    ))
                    .map_err(at)?;
                json!({
                    "id": p.resource.id.clone().unwrap_or_else(|| arm.public_ip_id(rg, &name)),
                    "ip_address": arm::public_ip_address(&p),
                })
            }
            Kind::AzureNic => {
                let vnet = vnet_name(&ctx.topology.network.name);
                let pip = a
                    .get("public_ip")
                    .and_then(Value::as_str)
                    .map(|p| arm.public_ip_id(rg, p));
                let n = self
                    .block_on(arm.put_nic(
                        rg,
                        &NicSpec {
                            name: name.clone(),
                            location: loc,
                            subnet_id: arm.subnet_id(rg, &vnet, &attr(&a, "subnet")),
                            private_ip: attr(&a, "private_ip"),
                            nsg_id: Some(arm.nsg_id(rg, &attr(&a, "nsg"))),
                            public_ip_id: pip,
                            tags,
                        },
                    ))
                    .map_err(at)?;
                json!({
                    "id": n.resource.id.clone().unwrap_or_else(|| arm.nic_id(rg, &name)),
                    "private_ip": arm::nic_private_ip(&n),
                })
            }
            Kind::AzureVm => return self.create_vm(ctx, arm, change),
            _ => return Err(super::super::unsupported("azure", change)),
        };
        Ok(record(change, change.kind, outputs))
    }

    pub(super) fn create_rg(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        change: &Change,
    ) -> Result<ResourceState, ProviderError> {
        let addr = change.addr.as_str();
        let at = arm_err(addr);
        let rg = self.rg();
        let net = &ctx.topology.network.name;
        let mut tags = self.apply_tags(ctx);
        let ours = ctx.state.lock().unwrap().lineage.clone();
        // Recorded earlier (update): keep what we knew about its origin.
        let recorded_pre = ctx
            .snapshot()
            .resources
            .get(addr)
            .and_then(|r| r.outputs.get("preexisting"))
            .and_then(Value::as_bool);
        let existing = self.block_on(arm.get_resource_group(rg)).map_err(at)?;
        let owner = existing
            .as_ref()
            .map(|g| lineage::owner(&g.tags, &ours, net));
        if let Some(lineage::Owner::Other {
            lineage: l,
            network: n,
        }) = &owner
        {
            return Err(lineage::refusal(
                addr,
                &format!("resource group {rg}"),
                &ours,
                l,
                n,
            ));
        }
        let preexisting = match (owner, recorded_pre) {
            (_, Some(p)) => p,
            (None, None) => false,
            (Some(lineage::Owner::Foreign), None) => true,
            (Some(_), None) => false,
        };
        if let Some(g) = &existing {
            // A PUT replaces the tags: keep the ones others set.
            for (k, v) in &g.tags {
                tags.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let g = self
            .block_on(arm.create_resource_group(rg, &self.config.location, &tags))
            .map_err(at)?;
        if preexisting {
            ctx.emit(Event::Warning {
                message: format!(
                    "{addr}: resource group {rg} existed before consort; it is used (and tagged) but never deleted by `consort destroy`"
                ),
            });
        }
        Ok(record(
            change,
            Kind::AzureResourceGroup,
            json!({"id": g.id, "preexisting": preexisting}),
        ))
    }

    pub(super) fn create_vm(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        change: &Change,
    ) -> Result<ResourceState, ProviderError> {
        let (addr, a, name) = target(change, false);
        let at = arm_err(addr);
        let node = node_of(change);
        let rg = self.rg();
        let st = ctx.snapshot();
        let ci = self.vm_cloud_init(ctx.topology, &st, &node)?;
        let text = render::cloud_init(&ci).map_err(|e| ProviderError::at(addr, e.to_string()))?;
        let digest = sha256_hex(text.as_bytes());
        let custom = custom_data::fit(&text).map_err(|(plain, gz)| {
            ProviderError::at(
                addr,
                format!(
                    "the cloud-init of {node} is {plain} bytes ({gz} gzip-compressed); Azure's customData holds at most {} bytes. Fund fewer accounts at genesis",
                    custom_data::LIMIT
                ),
            )
        })?;
        let mut tags = self.apply_tags(ctx);
        tags.insert(CUSTOM_DATA_TAG.into(), digest.clone());
        // A VM left by an interrupted apply: its customData cannot be changed, so adopt it
        // if it is the same, else delete it and start afresh.
        if let Some(vm) = self.block_on(arm.get_vm(rg, &name)).map_err(at)? {
            let same = vm
                .resource
                .tags
                .as_ref()
                .and_then(|t| t.get(CUSTOM_DATA_TAG))
                .and_then(Value::as_str)
                == Some(digest.as_str());
            if !same {
                ctx.emit(Event::Step {
                    subject: node.clone(),
                    step: "replacing a VM left by an interrupted apply".into(),
                });
                self.block_on(arm.delete_vm(rg, &name)).map_err(at)?;
            }
        }
        let spec = VmSpec {
            name: name.clone(),
            location: self.config.location.clone(),
            size: attr(&a, "size"),
            admin_username: attr(&a, "admin_username"),
            ssh_public_key: attr(&a, "ssh_public_key"),
            nic_id: arm.nic_id(rg, &attr(&a, "nic")),
            image: ImageRef::ubuntu_lts(),
            os_disk_type: OS_DISK_TYPE.into(),
            custom_data: CustomData::from_bytes(custom),
            tags,
        };
        let vm = self.block_on(arm.put_vm(rg, &spec)).map_err(at)?;
        let principal = vm
            .identity
            .as_ref()
            .and_then(|i| i.principal_id.clone())
            .ok_or_else(|| {
                ProviderError::at(
                    addr,
                    "the VM has no system-assigned identity (no identity.principalId)",
                )
            })?;
        let grants = self.grant_secrets(ctx, arm, addr, &node, &principal)?;
        let pip = st
            .resources
            .get(&pip_addr(&node))
            .and_then(|r| r.outputs.get("ip_address"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let private_ip = ci.node.listen_addr.clone();
        let enode_id = st
            .output_str(&format!("key.node.{node}"), "enode_id")
            .unwrap_or_default();
        Ok(record(
            change,
            Kind::AzureVm,
            json!({
                "id": vm.resource.id.clone().unwrap_or_else(|| arm.vm_id(rg, &name)),
                "private_ip": private_ip,
                "public_ip": pip,
                // Applications' RPC: tx nodes only (validators serve no TCP RPC).
                "rpc_url": pip.as_ref().map(|p| format!("http://{p}:{RPC_PORT}")),
                "enode": render::enode_url(enode_id, &private_ip, P2P_PORT),
                "static_nodes": ci.node.static_nodes,
                "geth_version": ci.geth_version,
                "custom_data_sha256": digest,
                "principal_id": principal,
                "role_assignments": grants,
            }),
        ))
    }

    /// An update of a VM: recreate it if it vanished; a mesh change is recorded (see the
    /// module doc); anything else cannot be changed on a running VM.
    pub(super) fn update_vm(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        change: &Change,
    ) -> Result<ResourceState, ProviderError> {
        let addr = change.addr.as_str();
        let a = attrs_of(change);
        let exists = self
            .block_on(arm.get_vm(self.rg(), &attr(&a, "name")))
            .map_err(|e| ProviderError::at(addr, e.to_string()))?
            .is_some();
        if !exists {
            return self.create_vm(ctx, arm, change);
        }
        let before = change.before.clone().unwrap_or(json!({}));
        let changed: Vec<String> = a
            .as_object()
            .map(|o| {
                o.keys()
                    .filter(|k| before.get(*k) != a.get(*k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let others: Vec<&String> = changed.iter().filter(|k| *k != "mesh").collect();
        if !others.is_empty() {
            return Err(ProviderError::at(
                addr,
                format!(
                    "changing {} of a running Azure VM is not supported in place; remove the node from the topology, apply, then add it back (its chain data is resynced)",
                    others.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let node = node_of(change);
        let statics = self.update_peers(ctx, addr, &node)?;
        let mut outputs = ctx
            .snapshot()
            .resources
            .get(addr)
            .map(|r| r.outputs.clone())
            .unwrap_or(json!({}));
        outputs["static_nodes"] = json!(statics);
        Ok(record(change, Kind::AzureVm, outputs))
    }

    pub(super) fn destroy(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        change: &Change,
    ) -> Result<(), ProviderError> {
        let (addr, a, name) = target(change, true);
        let at = arm_err(addr);
        let rg = self.rg();
        match change.kind {
            Kind::AzureResourceGroup => return self.destroy_rg(ctx, arm, change),
            Kind::AzureVault => return self.destroy_vault(ctx, arm, change),
            Kind::AzureSecrets => return self.apply_secrets(ctx, arm, change).map(drop),
            _ => {}
        }
        // Another deployment's resource of the same name is never deleted.
        if !matches!(change.kind, Kind::AzureSubnet) && !self.guard_change(ctx, arm, change, &a)? {
            return Ok(());
        }
        match change.kind {
            Kind::AzureVm => {
                let grants: Vec<String> = ctx
                    .snapshot()
                    .resources
                    .get(addr)
                    .and_then(|r| r.outputs.get("role_assignments"))
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                for g in grants {
                    self.block_on(arm.delete_role_assignment(&g)).map_err(at)?;
                }
                self.block_on(arm.delete_vm(rg, &name))
            }
            Kind::AzureNatGateway => self.block_on(arm.delete_nat_gateway(rg, &name)),
            Kind::AzureNic => return self.delete_nic(ctx, arm, addr, &name),
            Kind::AzurePublicIp => self.block_on(arm.delete_public_ip(rg, &name)),
            Kind::AzureSubnet => self.block_on(arm.delete_subnet(rg, &attr(&a, "vnet"), &name)),
            Kind::AzureNsg => self.block_on(arm.delete_nsg(rg, &name)),
            Kind::AzureVnet => self.block_on(arm.delete_vnet(rg, &name)),
            _ => return Err(super::super::unsupported("azure", change)),
        }
        .map_err(at)
    }

    /// Deletes a NIC. Right after its VM is deleted Azure keeps the NIC reserved for that
    /// VM for a while (400 `NicReservedForAnotherVm`, "reserved for another Virtual
    /// Machine for 180 seconds … retry after 180 seconds"): wait the time Azure states, say
    /// so, and delete again, so `destroy` and `member remove` finish in one run.
    fn delete_nic(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        addr: &str,
        name: &str,
    ) -> Result<(), ProviderError> {
        let rg = self.rg();
        let mut attempts = 0;
        loop {
            match self.block_on(arm.delete_nic(rg, name)) {
                Err(e) if e.code() == Some(NIC_RESERVED) && attempts < NIC_RESERVED_ATTEMPTS => {
                    attempts += 1;
                    let secs = stated_seconds(&e.to_string()).unwrap_or(NIC_RESERVED_DEFAULT_SECS);
                    ctx.emit(Event::Step {
                        subject: addr.to_string(),
                        step: format!(
                            "Azure keeps NIC {name} reserved for its deleted VM ({NIC_RESERVED}); waiting the {secs}s it states, then deleting it again"
                        ),
                    });
                    let until = Instant::now() + Duration::from_secs(secs);
                    while Instant::now() < until {
                        if ctx.interrupted.load(std::sync::atomic::Ordering::SeqCst) {
                            return Err(ProviderError::at(
                                addr,
                                format!("interrupted while NIC {name} was reserved by Azure; run the command again"),
                            ));
                        }
                        std::thread::sleep(Duration::from_millis(200).min(until - Instant::now()));
                    }
                }
                r => return r.map_err(arm_err(addr)),
            }
        }
    }

    pub(super) fn destroy_rg(
        &self,
        ctx: &ApplyCtx,
        arm: &Arm,
        change: &Change,
    ) -> Result<(), ProviderError> {
        let addr = change.addr.as_str();
        let at = arm_err(addr);
        let rg = self.rg();
        let st = ctx.snapshot();
        let preexisting = st
            .resources
            .get(addr)
            .and_then(|r| r.outputs.get("preexisting"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if preexisting {
            ctx.emit(Event::Warning {
                message: format!(
                    "{addr}: resource group {rg} existed before consort and is left in place"
                ),
            });
            return Ok(());
        }
        let left = match self.block_on(arm.list_resources(rg)) {
            Ok(l) => l,
            Err(e) if e.code() == Some("ResourceGroupNotFound") => return Ok(()),
            Err(e) => return Err(at(e)),
        };
        if !left.is_empty() {
            let names: Vec<String> = left
                .iter()
                .map(|r| format!("{} ({})", r.name, r.rtype))
                .collect();
            return Err(ProviderError::at(
                addr,
                format!(
                    "refusing to delete resource group {rg}: it still holds {} resource(s) consort did not create: {}. Delete or move them (or delete the group yourself), then run `consort destroy` again",
                    left.len(),
                    names.join(", ")
                ),
            ));
        }
        self.block_on(arm.delete_resource_group(rg)).map_err(at)
    }
}

/// ARM's error code for a NIC still reserved for a just-deleted VM (network 2024-03-01).
const NIC_RESERVED: &str = "NicReservedForAnotherVm";
/// What Azure documents when its message states no time.
const NIC_RESERVED_DEFAULT_SECS: u64 = 180;
/// Reservations are one period long; more than a few in a row is something else.
const NIC_RESERVED_ATTEMPTS: u32 = 3;

/// The seconds an ARM message states ("… for 180 seconds …").
fn stated_seconds(message: &str) -> Option<u64> {
    let words: Vec<&str> = message.split_whitespace().collect();
    words.windows(2).find_map(|w| {
        w[1].trim_end_matches(['.', ',', ';'])
            .eq_ignore_ascii_case("seconds")
            .then(|| w[0].parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_reservation_time_is_read_from_azures_message() {
        let m = "NicReservedForAnotherVm: Nic(s) in request is reserved for another Virtual Machine for 180 seconds. Please provide another nic(s) or retry after 180 seconds. Reserved VM: /subscriptions/s/x";
        assert_eq!(super::stated_seconds(m), Some(180));
        assert_eq!(super::stated_seconds("for 2 seconds."), Some(2));
        assert_eq!(super::stated_seconds("no time here"), None);
    }
}
