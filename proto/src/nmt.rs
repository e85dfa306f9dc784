//! Namespaced Merkle tree (as in Celestia's NMT): leaves sorted by namespace
//! (the rollup id), every node carries the smallest and largest namespace
//! below it, so one proof shows both that a rollup's leaves are in the block
//! (inclusion) and that no other leaf of that rollup is (completeness).
//!
//! Shape: RFC 6962 (split at the largest power of two below the leaf count).
//! Hashes: `leaf = H(0x00 || ns || data)`,
//! `node = H(0x01 || l.min || l.max || l.digest || r.min || r.max || r.digest)`.

use crate::pb;

pub type Namespace = u64;

const LEAF_PREFIX: u8 = 0;
const NODE_PREFIX: u8 = 1;
const EMPTY_TREE_TAG: &[u8] = b"seqnet/nmt/empty";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NmtError {
    #[error("leaves are not sorted by namespace: {before} before {after}")]
    Unsorted { before: Namespace, after: Namespace },
    #[error("digest has {0} bytes, want 32")]
    DigestLength(usize),
    #[error("proof range [{start}, {end}) does not fit {leaf_count} leaves")]
    BadRange {
        start: u64,
        end: u64,
        leaf_count: u64,
    },
    #[error("proof has {got} leaves in range, want {want}")]
    LeafCount { got: usize, want: u64 },
    #[error("proof is for {proof} leaves, root for {root}")]
    TreeSize { proof: u64, root: u64 },
    #[error("proof has too few nodes")]
    MissingNodes,
    #[error("proof has {0} nodes left over")]
    ExtraNodes(usize),
    #[error("leaf in proven range has namespace {got}, want {want}")]
    ForeignLeaf { got: Namespace, want: Namespace },
    #[error("namespace {namespace} is not complete: a sibling covers [{min}, {max}]")]
    Incomplete {
        namespace: Namespace,
        min: Namespace,
        max: Namespace,
    },
    #[error("computed root does not match the committed root")]
    RootMismatch,
    #[error("proof is missing")]
    MissingProof,
}

/// A tree node: the namespace range below it and its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NmtNode {
    pub min: Namespace,
    pub max: Namespace,
    pub digest: [u8; 32],
}

impl NmtNode {
    pub fn leaf(namespace: Namespace, data: &[u8]) -> NmtNode {
        let mut buf = Vec::with_capacity(1 + 8 + data.len());
        buf.push(LEAF_PREFIX);
        buf.extend_from_slice(&namespace.to_be_bytes());
        buf.extend_from_slice(data);
        NmtNode {
            min: namespace,
            max: namespace,
            digest: crate::sha256(&buf),
        }
    }

    /// Parent of two adjacent subtrees; `None` if they are out of namespace order.
    pub fn parent(left: &NmtNode, right: &NmtNode) -> Option<NmtNode> {
        if left.max > right.min {
            return None;
        }
        let mut buf = Vec::with_capacity(1 + 2 * 48);
        buf.push(NODE_PREFIX);
        for node in [left, right] {
            buf.extend_from_slice(&node.min.to_be_bytes());
            buf.extend_from_slice(&node.max.to_be_bytes());
            buf.extend_from_slice(&node.digest);
        }
        Some(NmtNode {
            min: left.min,
            max: right.max,
            digest: crate::sha256(&buf),
        })
    }
}

impl From<&NmtNode> for pb::NmtNode {
    fn from(n: &NmtNode) -> Self {
        pb::NmtNode {
            min_namespace: n.min,
            max_namespace: n.max,
            digest: n.digest.to_vec(),
        }
    }
}

impl TryFrom<&pb::NmtNode> for NmtNode {
    type Error = NmtError;
    fn try_from(n: &pb::NmtNode) -> Result<Self, NmtError> {
        Ok(NmtNode {
            min: n.min_namespace,
            max: n.max_namespace,
            digest: digest(&n.digest)?,
        })
    }
}

fn digest(bytes: &[u8]) -> Result<[u8; 32], NmtError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| NmtError::DigestLength(bytes.len()))
}

/// The committed root: the root node plus the number of leaves (which fixes
/// the tree's shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NmtRoot {
    pub leaf_count: u64,
    pub node: NmtNode,
}

impl NmtRoot {
    pub fn empty() -> NmtRoot {
        NmtRoot {
            leaf_count: 0,
            node: NmtNode {
                min: 0,
                max: 0,
                digest: crate::sha256(EMPTY_TREE_TAG),
            },
        }
    }

    /// 56 bytes that commit to the root (for the app hash).
    pub fn commitment_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(56);
        out.extend_from_slice(&self.leaf_count.to_be_bytes());
        out.extend_from_slice(&self.node.min.to_be_bytes());
        out.extend_from_slice(&self.node.max.to_be_bytes());
        out.extend_from_slice(&self.node.digest);
        out
    }
}

impl From<&NmtRoot> for pb::NmtRoot {
    fn from(r: &NmtRoot) -> Self {
        pb::NmtRoot {
            leaf_count: r.leaf_count,
            min_namespace: r.node.min,
            max_namespace: r.node.max,
            digest: r.node.digest.to_vec(),
        }
    }
}

impl TryFrom<&pb::NmtRoot> for NmtRoot {
    type Error = NmtError;
    fn try_from(r: &pb::NmtRoot) -> Result<Self, NmtError> {
        Ok(NmtRoot {
            leaf_count: r.leaf_count,
            node: NmtNode {
                min: r.min_namespace,
                max: r.max_namespace,
                digest: digest(&r.digest)?,
            },
        })
    }
}

/// Leaves `[start, end)` are exactly the leaves of one namespace; `start ==
/// end` proves that the namespace has no leaf (it would sit at `start`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceProof {
    pub start: u64,
    pub end: u64,
    pub leaf_count: u64,
    /// Subtrees entirely outside the range, left to right.
    pub nodes: Vec<NmtNode>,
}

impl From<&NamespaceProof> for pb::NamespaceProof {
    fn from(p: &NamespaceProof) -> Self {
        pb::NamespaceProof {
            start: p.start,
            end: p.end,
            leaf_count: p.leaf_count,
            nodes: p.nodes.iter().map(pb::NmtNode::from).collect(),
        }
    }
}

impl TryFrom<&pb::NamespaceProof> for NamespaceProof {
    type Error = NmtError;
    fn try_from(p: &pb::NamespaceProof) -> Result<Self, NmtError> {
        Ok(NamespaceProof {
            start: p.start,
            end: p.end,
            leaf_count: p.leaf_count,
            nodes: p
                .nodes
                .iter()
                .map(NmtNode::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Largest power of two strictly below `n` (n >= 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// A tree over leaf nodes sorted by namespace, with every inner node
/// computed once at construction (a block proves each of its rollups: each
/// proof then reads nodes instead of rehashing the tree).
#[derive(Debug, Clone)]
pub struct NamespacedMerkleTree {
    leaves: Vec<NmtNode>,
    /// The root of leaves `[lo, hi)` for every inner node of the shape.
    inner: std::collections::BTreeMap<(u64, u64), NmtNode>,
}

impl NamespacedMerkleTree {
    /// Builds a tree from leaf nodes, which must be sorted by namespace.
    pub fn from_leaves(leaves: Vec<NmtNode>) -> Result<Self, NmtError> {
        for pair in leaves.windows(2) {
            if pair[0].min > pair[1].min {
                return Err(NmtError::Unsorted {
                    before: pair[0].min,
                    after: pair[1].min,
                });
            }
        }
        let mut tree = NamespacedMerkleTree {
            inner: std::collections::BTreeMap::new(),
            leaves,
        };
        if !tree.leaves.is_empty() {
            tree.build(0, tree.leaves.len() as u64);
        }
        Ok(tree)
    }

    fn build(&mut self, lo: u64, hi: u64) -> NmtNode {
        if hi - lo == 1 {
            return self.leaves[lo as usize];
        }
        let mid = lo + split_point(hi - lo);
        let left = self.build(lo, mid);
        let right = self.build(mid, hi);
        // Leaves are sorted (checked above), so parents always exist.
        let node = NmtNode::parent(&left, &right).unwrap_or(left);
        self.inner.insert((lo, hi), node);
        node
    }

    pub fn leaves(&self) -> &[NmtNode] {
        &self.leaves
    }

    pub fn root(&self) -> NmtRoot {
        if self.leaves.is_empty() {
            return NmtRoot::empty();
        }
        NmtRoot {
            leaf_count: self.leaves.len() as u64,
            node: self.subtree_root(0, self.leaves.len() as u64),
        }
    }

    fn subtree_root(&self, lo: u64, hi: u64) -> NmtNode {
        if hi - lo == 1 {
            return self.leaves[lo as usize];
        }
        // Every [lo, hi) the shape has was built in `from_leaves`.
        self.inner
            .get(&(lo, hi))
            .copied()
            .unwrap_or(self.leaves[lo as usize])
    }

    /// The range of leaves with `namespace` and its proof.
    pub fn prove_namespace(&self, namespace: Namespace) -> NamespaceProof {
        let start = self.leaves.partition_point(|l| l.min < namespace) as u64;
        let end = self.leaves.partition_point(|l| l.min <= namespace) as u64;
        let mut nodes = Vec::new();
        if !self.leaves.is_empty() {
            self.collect(0, self.leaves.len() as u64, start, end, &mut nodes);
        }
        NamespaceProof {
            start,
            end,
            leaf_count: self.leaves.len() as u64,
            nodes,
        }
    }

    fn collect(&self, lo: u64, hi: u64, start: u64, end: u64, out: &mut Vec<NmtNode>) {
        match classify(lo, hi, start, end) {
            Span::Outside => out.push(self.subtree_root(lo, hi)),
            Span::Inside => {}
            Span::Split => {
                let mid = lo + split_point(hi - lo);
                self.collect(lo, mid, start, end, out);
                self.collect(mid, hi, start, end, out);
            }
        }
    }
}

enum Span {
    /// Entirely left or right of the range: the proof carries it.
    Outside,
    /// Entirely inside a non-empty range: the verifier recomputes it.
    Inside,
    Split,
}

fn classify(lo: u64, hi: u64, start: u64, end: u64) -> Span {
    if hi <= start || lo >= end {
        Span::Outside
    } else if start <= lo && hi <= end {
        Span::Inside
    } else {
        Span::Split
    }
}

/// Checks that `leaves` (the namespace's leaf data, in order) are all the
/// leaves of `namespace` under `root`.
pub fn verify_namespace<D: AsRef<[u8]>>(
    root: &NmtRoot,
    namespace: Namespace,
    leaves: &[D],
    proof: &NamespaceProof,
) -> Result<(), NmtError> {
    if proof.leaf_count != root.leaf_count {
        return Err(NmtError::TreeSize {
            proof: proof.leaf_count,
            root: root.leaf_count,
        });
    }
    if proof.start > proof.end || proof.end > proof.leaf_count {
        return Err(NmtError::BadRange {
            start: proof.start,
            end: proof.end,
            leaf_count: proof.leaf_count,
        });
    }
    if leaves.len() as u64 != proof.end - proof.start {
        return Err(NmtError::LeafCount {
            got: leaves.len(),
            want: proof.end - proof.start,
        });
    }
    if proof.leaf_count == 0 {
        return if proof.nodes.is_empty() && *root == NmtRoot::empty() {
            Ok(())
        } else {
            Err(NmtError::RootMismatch)
        };
    }
    let leaf_nodes: Vec<NmtNode> = leaves
        .iter()
        .map(|d| NmtNode::leaf(namespace, d.as_ref()))
        .collect();
    let mut verifier = Verifier {
        namespace,
        proof,
        leaf_nodes: &leaf_nodes,
        next_node: 0,
    };
    let computed = verifier.rebuild(0, proof.leaf_count)?;
    if verifier.next_node != proof.nodes.len() {
        return Err(NmtError::ExtraNodes(proof.nodes.len() - verifier.next_node));
    }
    if computed != root.node {
        return Err(NmtError::RootMismatch);
    }
    Ok(())
}

struct Verifier<'a> {
    namespace: Namespace,
    proof: &'a NamespaceProof,
    leaf_nodes: &'a [NmtNode],
    next_node: usize,
}

impl Verifier<'_> {
    fn rebuild(&mut self, lo: u64, hi: u64) -> Result<NmtNode, NmtError> {
        let (start, end) = (self.proof.start, self.proof.end);
        match classify(lo, hi, start, end) {
            Span::Outside => {
                let node = *self
                    .proof
                    .nodes
                    .get(self.next_node)
                    .ok_or(NmtError::MissingNodes)?;
                self.next_node += 1;
                // Completeness: whatever lies left of the range must hold only
                // smaller namespaces, whatever lies right only larger ones.
                let complete = if hi <= start {
                    node.max < self.namespace
                } else {
                    node.min > self.namespace
                };
                if !complete {
                    return Err(NmtError::Incomplete {
                        namespace: self.namespace,
                        min: node.min,
                        max: node.max,
                    });
                }
                Ok(node)
            }
            Span::Inside if hi - lo == 1 => Ok(self.leaf_nodes[(lo - start) as usize]),
            Span::Inside | Span::Split => {
                let mid = lo + split_point(hi - lo);
                let left = self.rebuild(lo, mid)?;
                let right = self.rebuild(mid, hi)?;
                NmtNode::parent(&left, &right).ok_or(NmtError::Unsorted {
                    before: left.max,
                    after: right.min,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tree(items: &[(Namespace, Vec<u8>)]) -> NamespacedMerkleTree {
        let mut items = items.to_vec();
        items.sort_by_key(|(ns, _)| *ns);
        NamespacedMerkleTree::from_leaves(
            items.iter().map(|(ns, d)| NmtNode::leaf(*ns, d)).collect(),
        )
        .expect("sorted")
    }

    fn data_of(items: &[(Namespace, Vec<u8>)], ns: Namespace) -> Vec<Vec<u8>> {
        let mut items = items.to_vec();
        items.sort_by_key(|(ns, _)| *ns);
        items
            .into_iter()
            .filter(|(n, _)| *n == ns)
            .map(|(_, d)| d)
            .collect()
    }

    #[test]
    fn unsorted_leaves_are_refused() {
        let err =
            NamespacedMerkleTree::from_leaves(vec![NmtNode::leaf(2, b"a"), NmtNode::leaf(1, b"b")]);
        assert_eq!(
            err.unwrap_err(),
            NmtError::Unsorted {
                before: 2,
                after: 1
            }
        );
    }

    #[test]
    fn empty_tree_proves_absence() {
        let t = tree(&[]);
        let proof = t.prove_namespace(5);
        verify_namespace::<Vec<u8>>(&t.root(), 5, &[], &proof).expect("absent");
    }

    #[test]
    fn removing_or_adding_a_leaf_fails() {
        let items: Vec<(Namespace, Vec<u8>)> = vec![
            (1, b"a".to_vec()),
            (2, b"b".to_vec()),
            (2, b"c".to_vec()),
            (2, b"d".to_vec()),
            (3, b"e".to_vec()),
        ];
        let t = tree(&items);
        let root = t.root();
        let proof = t.prove_namespace(2);
        let full = data_of(&items, 2);
        verify_namespace(&root, 2, &full, &proof).expect("complete batch verifies");
        // Drop one leaf: the verifier must notice, however the proof is adjusted.
        let short = &full[..2];
        assert!(verify_namespace(&root, 2, short, &proof).is_err());
        let mut shrunk = proof.clone();
        shrunk.end -= 1;
        assert!(verify_namespace(&root, 2, short, &shrunk).is_err());
        // Reorder.
        let mut swapped = full.clone();
        swapped.swap(0, 1);
        assert_eq!(
            verify_namespace(&root, 2, &swapped, &proof),
            Err(NmtError::RootMismatch)
        );
        // A proof for another namespace does not prove this one.
        let other = t.prove_namespace(1);
        assert!(verify_namespace(&root, 2, &full, &other).is_err());
    }

    proptest! {
        #[test]
        fn every_namespace_verifies_and_is_complete(
            items in proptest::collection::vec((0u64..6, proptest::collection::vec(any::<u8>(), 0..8)), 0..40),
            probe in 0u64..8,
        ) {
            let t = tree(&items);
            let root = t.root();
            let proof = t.prove_namespace(probe);
            let data = data_of(&items, probe);
            prop_assert_eq!(verify_namespace(&root, probe, &data, &proof), Ok(()));
            // Leaving out any one leaf is detected.
            for skip in 0..data.len() {
                let mut partial = data.clone();
                partial.remove(skip);
                let mut p = proof.clone();
                p.end -= 1;
                prop_assert!(verify_namespace(&root, probe, &partial, &p).is_err());
                prop_assert!(verify_namespace(&root, probe, &partial, &proof).is_err());
            }
            // Claiming absence of a present namespace fails.
            if !data.is_empty() {
                let mut empty = proof.clone();
                empty.end = empty.start;
                prop_assert!(verify_namespace::<Vec<u8>>(&root, probe, &[], &empty).is_err());
            }
        }

        #[test]
        fn proof_round_trips_through_protobuf(
            items in proptest::collection::vec((0u64..4, proptest::collection::vec(any::<u8>(), 0..8)), 1..20),
        ) {
            let t = tree(&items);
            let proof = t.prove_namespace(2);
            let wire = pb::NamespaceProof::from(&proof);
            prop_assert_eq!(NamespaceProof::try_from(&wire), Ok(proof));
            let root = t.root();
            prop_assert_eq!(NmtRoot::try_from(&pb::NmtRoot::from(&root)), Ok(root));
        }
    }
}
