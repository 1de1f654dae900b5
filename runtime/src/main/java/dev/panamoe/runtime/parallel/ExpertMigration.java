package dev.panamoe.runtime.parallel;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.ExpertSlots;
import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Parameter;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.runtime.comm.CommunicatorException;
import dev.panamoe.runtime.train.AdamW;
import dev.panamoe.strategy.placement.ExpertPlacement;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Exact live migration: applies new expert placements to this rank's MoE layers between
 * optimizer steps, moving each moved expert's whole training state with it — w1 and w2's values,
 * gradients and AdamW moments m and v (the f32 masters; a bf16 layer's working copies are rounded
 * from the moved masters) — so the run
 * continues exactly as it would have without the move. Every rank of the world calls
 * {@link #apply} with the same placements at the same step:
 * <pre>
 *   pack      each rank copies the state of every local expert that goes to a new slot into one send
 *             buffer, by destination EP rank, then layer, then destination slot (ascending)
 *   exchange  one all-to-allv in the EXPERT group (to itself too) into a staging buffer; no slot, moment
 *             or dispatch table is touched yet
 *   agree     every rank checks what it staged (finite) and the world sums the failures
 *   commit    only when no rank failed: the dispatch tables switched ({@link MoELayer#applyPlacement};
 *             a slot left empty is zeroed), staged state into the new slots
 * </pre>
 * A failure before the commit — a bad staged value on any rank, or a rank that dies (the
 * communicator throws on every rank) — leaves every rank on the old placement with its state
 * untouched, and {@link MigrationException} stops the job with the reason: never a mix of placements.
 *
 * <p>The optimizer state is found by the identity of the parameter value tensors: AdamW keeps m
 * and v per slot tensor, so moving the moments' contents keeps each expert's moments with it.
 */
public final class ExpertMigration {

    /** A migration that did not commit: every rank is still on the placement it had before. */
    public static final class MigrationException extends RuntimeException {
        MigrationException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private final Backend backend;
    private final Communicator expert;
    private final Communicator world;
    private final int tp;
    private final Map<Tensor, AdamW.State> moments = new IdentityHashMap<>();

    public ExpertMigration(Backend backend, ProcessGroups groups, AdamW optimizer) {
        this.backend = backend;
        this.expert = groups.expert();
        this.world = groups.world();
        this.tp = groups.tensor().size();
        for (AdamW.State s : optimizer.states()) {
            moments.put(s.parameter().value(), s);
        }
    }

    /**
     * Moves the layers to next (one placement per layer, in order); returns how many layers changed.
     * A copy of a replicated expert receives its first slot's whole state (its gradient and moments
     * are then unused: {@link ExpertReplicas} sums copies' gradients into the first slot).
     * Collective over the world: every rank calls it with the same placements (layers of other
     * stages are theirs). Throws MigrationException, with every rank on its old placement, when
     * any rank fails before the commit.
     */
    public int apply(List<MoELayer> layers, List<ExpertPlacement> next) {
        if (next.size() != layers.size()) {
            throw new IllegalArgumentException("next: expected " + layers.size() + " placements (one per MoE layer of "
                    + "this stage), got " + next.size());
        }
        List<Move> moves = moves(layers, next);
        try (TensorScope scope = TensorScope.confined(backend)) {
            Tensor staged = exchange(scope, layers, moves);
            agree(stagedFailure(staged));
            commit(layers, next, moves, staged);
        }
        return (int) moves.stream().map(Move::layer).distinct().count();
    }

    /**
     * One expert going to a new slot: layer, destination physical slot, the expert, the EP rank
     * that holds its state now (its slot in the current placement) and the one that receives it.
     */
    private record Move(int layer, int slot, int expert, int from, int to) {
    }

    /**
     * Every (layer, slot) of next that must be filled: it holds a different expert, or it becomes
     * the first slot (owner) of an expert it held as a copy; by layer then slot, the same list on
     * every EP rank. The state comes from the expert's current first slot.
     */
    private static List<Move> moves(List<MoELayer> layers, List<ExpertPlacement> next) {
        List<Move> moves = new ArrayList<>();
        for (int l = 0; l < layers.size(); l++) {
            ExpertSlots now = layers.get(l).placement();
            ExpertPlacement to = next.get(l);
            layers.get(l).changedSlots(MoELayers.slots(to)); // checks the shape
            for (int p = 0; p < to.physicalSlots(); p++) {
                int e = to.expertAt(p);
                if (e == ExpertPlacement.FREE) {
                    continue;
                }
                int owner = now.slotsOf(e)[0];
                boolean newOwner = to.slotsOf(e)[0] == p && owner != p;
                if (now.expertAt(p) != e || newOwner) {
                    moves.add(new Move(l, p, e, now.deviceOf(owner), to.deviceOf(p)));
                }
            }
        }
        return moves;
    }

    /**
     * Packs the outgoing states by destination rank (moves keep their order within one), exchanges
     * them and returns the staging buffer: the incoming states by source rank, in move order.
     */
    private Tensor exchange(TensorScope scope, List<MoELayer> layers, List<Move> moves) {
        int ep = expert.size();
        int me = expert.rank();
        int[] sendCounts = new int[ep];
        int[] recvCounts = new int[ep];
        for (Move m : moves) {
            int n = stateSize(layers.get(m.layer()));
            if (m.from() == me) {
                sendCounts[m.to()] += n;
            }
            if (m.to() == me) {
                recvCounts[m.from()] += n;
            }
        }
        Tensor send = scope.allocate("migration send", DType.F32, Math.max(1, sum(sendCounts)));
        Tensor staged = scope.allocate("migration staging", DType.F32, Math.max(1, sum(recvCounts)));
        int offset = 0;
        for (int q = 0; q < ep; q++) {
            for (Move m : moves) {
                if (m.from() == me && m.to() == q) {
                    offset = copyState(stateOf(layers.get(m.layer()), m.expert()), send, offset, true);
                }
            }
        }
        try {
            expert.allToAllV(send, sendCounts, staged, recvCounts);
        } catch (CommunicatorException e) {
            throw stopped("the exchange failed", e);
        }
        return staged;
    }

    /** Null when every staged value is finite, else why not. */
    private String stagedFailure(Tensor staged) {
        long i = backend.findNonFinite(staged);
        return i < 0 ? null : "rank " + world.rank() + " staged a non-finite value " + staged.getFloat(i)
                + " at element " + i;
    }

    /** Sums the ranks' failures over the world; throws on every rank unless there are none. */
    private void agree(String localFailure) {
        int failed;
        try (TensorScope s = TensorScope.confined(backend)) {
            Tensor flag = s.allocate("migration failures", DType.I32, 1);
            flag.copyFrom(new int[] {localFailure == null ? 0 : 1});
            world.allReduce(flag);
            failed = flag.getInt(0);
        } catch (CommunicatorException e) {
            throw stopped("the agreement failed", e);
        }
        if (failed > 0) {
            throw new MigrationException("expert migration refused on every rank: " + failed + " rank(s) failed to "
                    + "stage their experts" + (localFailure == null ? "" : " (" + localFailure + ")")
                    + "; every rank keeps the old placement", null);
        }
    }

    private MigrationException stopped(String what, CommunicatorException e) {
        return new MigrationException("expert migration interrupted: " + what + " (" + e.getMessage()
                + "); nothing was committed, this rank keeps the old placement; stopping the job", e);
    }

    /**
     * Switches every layer to its next placement (dispatch tables; a slot left empty is zeroed),
     * then copies the staged states (by source rank, in move order) into their slots.
     */
    private void commit(List<MoELayer> layers, List<ExpertPlacement> next, List<Move> moves, Tensor staged) {
        for (int l = 0; l < layers.size(); l++) {
            layers.get(l).applyPlacement(MoELayers.slots(next.get(l)), (slot, e, w1, w2) -> { }); // filled below
        }
        int me = expert.rank();
        int offset = 0;
        for (int q = 0; q < expert.size(); q++) {
            for (Move m : moves) {
                if (m.to() == me && m.from() == q) {
                    MoELayer layer = layers.get(m.layer());
                    List<Parameter> slot = layer.slotParameters(m.slot() - me * layer.placement().slotsPerDevice());
                    offset = copyState(state(slot.get(0), slot.get(1)), staged, offset, false);
                }
            }
        }
        layers.forEach(MoELayer::refreshWorkingCopies);
    }

    /** The tensors that make up an expert's state, in transfer order. */
    private List<Tensor> state(Parameter w1, Parameter w2) {
        List<Tensor> all = new ArrayList<>(8);
        for (Parameter p : List.of(w1, w2)) {
            AdamW.State s = moments.get(p.value());
            if (s == null) {
                throw new IllegalStateException("optimizer: no AdamW state for the slot tensor of " + p.name());
            }
            all.add(p.value());
            all.add(p.grad());
            all.add(s.m());
            all.add(s.v());
        }
        return all;
    }

    /** The state of the slot that holds expert now (its first, when it has copies): on this rank. */
    private List<Tensor> stateOf(MoELayer layer, int expertId) {
        ExpertSlots now = layer.placement();
        int local = now.slotsOf(expertId)[0] - expert.rank() * now.slotsPerDevice();
        List<Parameter> slot = layer.slotParameters(local);
        return state(slot.get(0), slot.get(1));
    }

    /** Elements of one expert's state on this rank: 4 x (w1 shard [hidden, inputWidth(ffn / tp)] + w2 shard [ffn / tp, hidden]). */
    private int stateSize(MoELayer layer) {
        MoELayer.Config c = layer.config();
        int localFfn = c.ffn() / tp;
        return Math.toIntExact(4L * c.hidden() * (c.activation().inputWidth(localFfn) + localFfn));
    }

    /** Copies the tensors to (pack) or from (unpack) buffer[offset...]; returns the offset after them. */
    private static int copyState(List<Tensor> tensors, Tensor buffer, int offset, boolean pack) {
        for (Tensor t : tensors) {
            int n = Math.toIntExact(t.numel());
            Tensor part = buffer.slice(offset, offset + n);
            if (pack) {
                part.copyFrom(t);
            } else {
                t.copyFrom(part);
            }
            offset += n;
        }
        return offset;
    }

    private static int sum(int[] v) {
        int s = 0;
        for (int x : v) {
            s += x;
        }
        return s;
    }
}
