//! NUMA placement: which nodes the cache uses, which cores serve each node, and binding.
//!
//! The planning part is pure data and arithmetic ([`Plan`], [`NumaMode`]): it takes the
//! machine's nodes as a list of CPU numbers and decides the shards, the generation pools and
//! the node of each FUSE session thread. It is unit-tested on made-up node lists and, with
//! the `numa` feature, on hwloc synthetic topologies such as `node:2 core:2 pu:1`.
//!
//! The binding part ([`Binder`]) is the only code that calls hwloc: it reads the real
//! topology and binds a thread's CPUs and its memory allocations to one node. Binding the
//! memory policy of the thread (not each buffer) means every block a node's threads allocate
//! and first touch lands on that node. Without the `numa` feature there is no hwloc: the
//! machine is one node of `available_parallelism` CPUs and nothing is bound.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// How the cache maps itself onto NUMA nodes; `auto` by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NumaMode {
    /// One shard and one generation pool per NUMA node of the machine.
    #[default]
    Auto,
    /// Treat the machine as one node: one shard, one pool over all CPUs, no binding.
    Uma,
    /// Run everything on this node (by its OS index): its CPUs, its memory.
    Node(usize),
}

impl FromStr for NumaMode {
    type Err = TopologyError;

    fn from_str(text: &str) -> Result<NumaMode, TopologyError> {
        match text {
            "auto" => Ok(NumaMode::Auto),
            "uma" => Ok(NumaMode::Uma),
            _ => text
                .parse()
                .map(NumaMode::Node)
                .map_err(|_| TopologyError::BadMode(text.to_owned())),
        }
    }
}

impl fmt::Display for NumaMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumaMode::Auto => f.write_str("auto"),
            NumaMode::Uma => f.write_str("uma"),
            NumaMode::Node(n) => write!(f, "{n}"),
        }
    }
}

/// Why no placement could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// The `--numa` value is not `auto`, `uma` or a node number.
    #[error("invalid numa '{0}': expected auto, uma or a NUMA node number")]
    BadMode(String),
    /// `--numa N` names a node the machine does not have.
    #[error("no NUMA node {wanted}: this machine has nodes {have:?}")]
    NoSuchNode {
        /// The node asked for.
        wanted: usize,
        /// The nodes there are.
        have: Vec<usize>,
    },
    /// hwloc could not read the topology.
    #[error("cannot read the machine topology: {0}")]
    Hwloc(String),
}

/// One NUMA node as the plan sees it: its OS index and the OS numbers of its CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCpus {
    /// The node's OS index (as in `numactl --hardware`).
    pub os_index: usize,
    /// OS indexes of the logical CPUs (PUs) of the node, ascending.
    pub cpus: Vec<usize>,
}

/// The placement decided for one mount: the nodes it uses, in shard order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    nodes: Vec<NodeCpus>,
    /// Whether threads are to be bound at all (`false` for `uma`).
    bind: bool,
}

impl Plan {
    /// Plans the use of `machine` (its nodes, none empty of CPUs) under `mode`.
    pub fn new(machine: Vec<NodeCpus>, mode: NumaMode) -> Result<Plan, TopologyError> {
        let machine: Vec<NodeCpus> = machine.into_iter().filter(|n| !n.cpus.is_empty()).collect();
        match mode {
            NumaMode::Auto => Ok(Plan {
                bind: machine.len() > 1,
                nodes: machine,
            }),
            NumaMode::Uma => Ok(Plan::single(machine.into_iter().flat_map(|n| n.cpus))),
            NumaMode::Node(wanted) => match machine.iter().find(|n| n.os_index == wanted) {
                Some(node) => Ok(Plan {
                    nodes: vec![node.clone()],
                    bind: true,
                }),
                None => Err(TopologyError::NoSuchNode {
                    wanted,
                    have: machine.iter().map(|n| n.os_index).collect(),
                }),
            },
        }
    }

    /// One unbound node holding `cpus` (at least one CPU is assumed when none is given).
    pub fn single(cpus: impl IntoIterator<Item = usize>) -> Plan {
        let mut cpus: Vec<usize> = cpus.into_iter().collect();
        cpus.sort_unstable();
        if cpus.is_empty() {
            cpus.push(0);
        }
        Plan {
            nodes: vec![NodeCpus { os_index: 0, cpus }],
            bind: false,
        }
    }

    /// The nodes in use, in shard order: shard `i` lives on `nodes()[i]`.
    pub fn nodes(&self) -> &[NodeCpus] {
        &self.nodes
    }

    /// Whether threads and memory are bound to their node.
    pub fn binds(&self) -> bool {
        self.bind
    }

    /// The shard (and pool) that FUSE session thread number `thread` serves from.
    ///
    /// Threads are dealt round-robin, so `n` threads over `k` nodes put `n / k` or
    /// `n / k + 1` on each node.
    pub fn node_of_thread(&self, thread: usize) -> usize {
        thread % self.nodes.len()
    }

    /// The shard whose node holds `cpu`, if any.
    pub fn node_of_cpu(&self, cpu: usize) -> Option<usize> {
        self.nodes.iter().position(|n| n.cpus.contains(&cpu))
    }

    /// Generation threads in the pool of shard `node`: one per CPU of the node.
    pub fn pool_threads(&self, node: usize) -> usize {
        self.nodes[node].cpus.len()
    }

    /// The cache budget of each shard, in bytes: `total` split evenly.
    pub fn shard_budget(&self, total: u64) -> u64 {
        total / self.nodes.len() as u64
    }
}

/// Binds threads to nodes. Cloning shares the one hwloc topology.
#[derive(Clone)]
pub struct Binder {
    #[cfg(feature = "numa")]
    topology: Option<Arc<hwlocality::Topology>>,
    plan: Arc<Plan>,
}

impl fmt::Debug for Binder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binder").field("plan", &self.plan).finish()
    }
}

impl Binder {
    /// Reads this machine's topology and plans for `mode`.
    pub fn detect(mode: NumaMode) -> Result<Binder, TopologyError> {
        #[cfg(feature = "numa")]
        {
            let topology =
                hwlocality::Topology::new().map_err(|e| TopologyError::Hwloc(e.to_string()))?;
            Binder::from_topology(topology, mode)
        }
        #[cfg(not(feature = "numa"))]
        {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            if let NumaMode::Node(wanted) = mode {
                if wanted != 0 {
                    return Err(TopologyError::NoSuchNode {
                        wanted,
                        have: vec![0],
                    });
                }
            }
            Ok(Binder::unbound(Plan::single(0..cpus)))
        }
    }

    /// Plans for `mode` on an hwloc topology (real or synthetic) and binds through it.
    #[cfg(feature = "numa")]
    pub fn from_topology(
        topology: hwlocality::Topology,
        mode: NumaMode,
    ) -> Result<Binder, TopologyError> {
        let plan = Plan::new(hwloc::machine_nodes(&topology), mode)?;
        Ok(Binder {
            topology: Some(Arc::new(topology)),
            plan: Arc::new(plan),
        })
    }

    /// A binder that follows `plan` but binds nothing (tests, `--numa uma`).
    pub fn unbound(plan: Plan) -> Binder {
        Binder {
            #[cfg(feature = "numa")]
            topology: None,
            plan: Arc::new(Plan {
                bind: false,
                ..plan
            }),
        }
    }

    /// The plan in force.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Binds the calling thread's CPUs and memory policy to shard `node`'s node.
    ///
    /// Failures are logged and otherwise ignored: an unbound thread still serves correct
    /// bytes, only from farther memory.
    pub fn bind_current_thread(&self, node: usize) {
        if !self.plan.bind {
            return;
        }
        #[cfg(feature = "numa")]
        if let Some(topology) = &self.topology {
            if let Err(err) = hwloc::bind_thread(topology, &self.plan.nodes[node]) {
                tracing::warn!(node, %err, "cannot bind thread to its numa node");
            }
        }
        #[cfg(not(feature = "numa"))]
        let _ = node;
    }
}

/// The calls into hwloc.
#[cfg(feature = "numa")]
mod hwloc {
    use hwlocality::bitmap::BitmapIndex;
    use hwlocality::cpu::binding::CpuBindingFlags;
    use hwlocality::cpu::cpuset::CpuSet;
    use hwlocality::memory::binding::{MemoryBindingFlags, MemoryBindingPolicy};
    use hwlocality::memory::nodeset::NodeSet;
    use hwlocality::object::types::ObjectType;
    use hwlocality::Topology;

    use super::NodeCpus;

    /// The NUMA nodes of `topology` with the PUs of each, in OS index order.
    pub fn machine_nodes(topology: &Topology) -> Vec<NodeCpus> {
        let mut nodes: Vec<NodeCpus> = topology
            .objects_with_type(ObjectType::NUMANode)
            .enumerate()
            .map(|(i, node)| NodeCpus {
                os_index: node.os_index().unwrap_or(i),
                cpus: node
                    .cpuset()
                    .map(|set| set.iter_set().map(usize::from).collect())
                    .unwrap_or_default(),
            })
            .collect();
        nodes.sort_by_key(|n| n.os_index);
        nodes
    }

    /// Binds the calling thread to the CPUs of `node` and its allocations to its memory.
    pub fn bind_thread(topology: &Topology, node: &NodeCpus) -> Result<(), String> {
        let cpus: CpuSet = indexes(&node.cpus).collect();
        topology
            .bind_cpu(&cpus, CpuBindingFlags::THREAD)
            .map_err(|e| e.to_string())?;
        let memory: NodeSet = indexes(&[node.os_index]).collect();
        topology
            .bind_memory(
                &memory,
                MemoryBindingPolicy::Bind,
                MemoryBindingFlags::THREAD | MemoryBindingFlags::BY_NODE_SET,
            )
            .map_err(|e| e.to_string())
    }

    fn indexes(list: &[usize]) -> impl Iterator<Item = BitmapIndex> + '_ {
        list.iter().filter_map(|&i| BitmapIndex::try_from(i).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(nodes: usize, cpus_per_node: usize) -> Vec<NodeCpus> {
        (0..nodes)
            .map(|n| NodeCpus {
                os_index: n,
                cpus: (n * cpus_per_node..(n + 1) * cpus_per_node).collect(),
            })
            .collect()
    }

    #[test]
    fn modes_parse_and_print() {
        for text in ["auto", "uma", "3"] {
            assert_eq!(text.parse::<NumaMode>().unwrap().to_string(), text);
        }
        let err = "two".parse::<NumaMode>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid numa 'two': expected auto, uma or a NUMA node number"
        );
    }

    #[test]
    fn auto_gives_one_shard_and_pool_per_node() {
        for nodes in [1, 2, 4] {
            let plan = Plan::new(machine(nodes, 2), NumaMode::Auto).unwrap();
            assert_eq!(plan.nodes().len(), nodes);
            assert_eq!(plan.binds(), nodes > 1);
            assert!((0..nodes).all(|n| plan.pool_threads(n) == 2));
            assert_eq!(plan.shard_budget(256 << 20), (256 << 20) / nodes as u64);
        }
    }

    #[test]
    fn fuse_threads_spread_evenly_over_nodes() {
        for nodes in [1, 2, 4] {
            let plan = Plan::new(machine(nodes, 2), NumaMode::Auto).unwrap();
            let mut per_node = vec![0; nodes];
            (0..8).for_each(|t| per_node[plan.node_of_thread(t)] += 1);
            assert!(per_node.iter().all(|&n| n == 8 / nodes), "{per_node:?}");
        }
    }

    #[test]
    fn a_cpu_maps_to_the_shard_of_its_node() {
        for nodes in [1, 2, 4] {
            let plan = Plan::new(machine(nodes, 2), NumaMode::Auto).unwrap();
            for cpu in 0..nodes * 2 {
                assert_eq!(plan.node_of_cpu(cpu), Some(cpu / 2));
            }
            assert_eq!(plan.node_of_cpu(nodes * 2), None);
        }
        let one = Plan::new(machine(4, 2), NumaMode::Node(2)).unwrap();
        assert_eq!((one.node_of_cpu(5), one.node_of_cpu(0)), (Some(0), None));
    }

    #[test]
    fn uma_merges_and_node_selects() {
        let uma = Plan::new(machine(4, 2), NumaMode::Uma).unwrap();
        assert_eq!(uma.nodes().len(), 1);
        assert_eq!(uma.pool_threads(0), 8);
        assert!(!uma.binds());

        let one = Plan::new(machine(4, 2), NumaMode::Node(2)).unwrap();
        assert_eq!(
            one.nodes(),
            &[NodeCpus {
                os_index: 2,
                cpus: vec![4, 5]
            }]
        );
        assert!(one.binds());
        let err = Plan::new(machine(2, 2), NumaMode::Node(5)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no NUMA node 5: this machine has nodes [0, 1]"
        );
    }

    #[test]
    fn nodes_without_cpus_are_left_out() {
        let mut nodes = machine(2, 2);
        nodes.push(NodeCpus {
            os_index: 7,
            cpus: vec![],
        });
        assert_eq!(Plan::new(nodes, NumaMode::Auto).unwrap().nodes().len(), 2);
    }

    #[cfg(feature = "numa")]
    #[test]
    fn synthetic_topologies_plan_per_node() {
        for (text, nodes) in [
            ("node:1 core:2 pu:1", 1),
            ("node:2 core:2 pu:1", 2),
            ("pack:2 node:2 core:2 pu:2", 4),
        ] {
            let topology = hwlocality::Topology::builder()
                .from_synthetic(text)
                .unwrap()
                .build()
                .unwrap();
            let binder = Binder::from_topology(topology, NumaMode::Auto).unwrap();
            let plan = binder.plan();
            assert_eq!(plan.nodes().len(), nodes, "{text}");
            let all: Vec<usize> = plan.nodes().iter().flat_map(|n| n.cpus.clone()).collect();
            let cores_per_node = all.len() / nodes;
            assert!(plan.nodes().iter().all(|n| n.cpus.len() == cores_per_node));
            binder.bind_current_thread(nodes - 1);
        }
    }

    #[cfg(feature = "numa")]
    #[test]
    fn this_machine_has_a_plan() {
        let binder = Binder::detect(NumaMode::Auto).unwrap();
        assert!(!binder.plan().nodes().is_empty());
        assert!(Binder::detect(NumaMode::Node(999)).is_err());
    }
}
