package dev.panamoe.runtime.parallel;

import dev.panamoe.ops.Backend;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.DispatchPlan;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.ops.TokenExchange;
import dev.panamoe.runtime.comm.Communicator;
import java.util.Arrays;

/**
 * The MoE layer's exchange over the EXPERT group (rows of the layer's dtype: f32, or bf16 moved
 * as they are): the per-slot row counts go
 * all-to-all, then the rows all-to-allv to the ranks that hold their slots, where they are
 * regrouped from (source rank, slot) into (local slot, source rank) order for the experts; the
 * way back undoes both. Backward moves the gradients the same way.
 */
final class AllToAllExchange implements TokenExchange {
    private final Communicator expert;

    AllToAllExchange(Communicator expert) {
        this.expert = expert;
    }

    @Override
    public int size() {
        return expert.size();
    }

    @Override
    public int rank() {
        return expert.rank();
    }

    @Override
    public Pass newPass(Backend backend, DType rows, int hidden, int localSlots) {
        return new RowsPass(backend, rows, hidden, localSlots);
    }

    @Override
    public String toString() {
        return "all-to-all over the EXPERT group of " + expert.size();
    }

    /** One workspace's counts, regrouping and received rows (grown when a pass receives more). */
    private final class RowsPass implements Pass {
        private final Backend backend;
        private final DType dtype;
        private final int hidden;
        private final int localSlots;
        private final int ep = expert.size();
        private TensorScope scope;
        private Tensor receivedCounts;
        private Tensor localOffsets;
        private final int[] sendElements = new int[ep];
        private final int[] recvElements = new int[ep];
        private TensorScope rowScope;
        private int rowCapacity = -1;
        private Tensor receivedBuffer;
        private Tensor xLocalBuffer;
        private Tensor outLocalBuffer;
        private Tensor gradXLocalBuffer;
        private Tensor toLocalBuffer;
        private Tensor toReceivedBuffer;
        // this pass's views: R received rows
        private Tensor received;
        private Tensor xLocal;
        private Tensor outLocal;
        private Tensor gradXLocal;
        private Tensor toLocalOrder;
        private Tensor toReceivedOrder;

        RowsPass(Backend backend, DType dtype, int hidden, int localSlots) {
            this.backend = backend;
            this.dtype = dtype;
            this.hidden = hidden;
            this.localSlots = localSlots;
        }

        @Override
        public Tensor dispatch(DispatchPlan plan, Tensor xs) {
            exchangeCounts(plan);
            deliverRows(xs, xLocal);
            return xLocal;
        }

        @Override
        public Tensor offsets() {
            return localOffsets;
        }

        @Override
        public Tensor outputs(Tensor expertOut) {
            return outLocal;
        }

        @Override
        public void combine(Tensor outputs, Tensor expertOut) {
            returnRows(outputs, expertOut);
        }

        @Override
        public Tensor dispatchGradient(Tensor gradExpertOut) {
            deliverRows(gradExpertOut, outLocal); // the outputs' rows hold their gradient now
            return outLocal;
        }

        @Override
        public Tensor inputGradients(Tensor gradXs) {
            return gradXLocal;
        }

        @Override
        public void combineGradient(Tensor inputGradients, Tensor gradXs) {
            returnRows(inputGradients, gradXs);
        }

        /** Slot-ordered rows to the ranks that hold the slots, there regrouped by local slot into local. */
        private void deliverRows(Tensor rows, Tensor local) {
            expert.allToAllV(rows, sendElements, received, recvElements);
            if (received.dim(0) > 0) {
                backend.permute(received, toLocalOrder, 1, local);
            }
        }

        /** Rows by local slot back into received order, then to their source ranks' slot-ordered buffer. */
        private void returnRows(Tensor local, Tensor back) {
            if (received.dim(0) > 0) {
                backend.permute(local, toReceivedOrder, 1, received);
            }
            expert.allToAllV(received, recvElements, back, sendElements);
        }

        /**
         * Sends each EP rank the row counts of its slots (all-to-all in the EXPERT group), then
         * derives the element counts of both row exchanges and the regrouping of the received rows
         * (in source-rank, then slot order) into local-slot, then source-rank order.
         */
        private void exchangeCounts(DispatchPlan plan) {
            int s = localSlots;
            if (scope == null || !scope.isOpen()) { // first pass, or the first after close
                scope = TensorScope.shared(backend);
                receivedCounts = scope.allocate("receivedCounts", DType.I32, ep * s);
                localOffsets = scope.allocate("localOffsets", DType.I32, s + 1);
            }
            int[] perPeer = new int[ep];
            Arrays.fill(perPeer, s);
            expert.allToAllV(plan.expertCounts(), perPeer, receivedCounts, perPeer);
            int[] sent = plan.counts();
            int[] recv = receivedCounts.toIntArray(); // [source q][local slot l]
            for (int q = 0; q < ep; q++) {
                sendElements[q] = hidden * Arrays.stream(sent, q * s, (q + 1) * s).sum();
                recvElements[q] = hidden * Arrays.stream(recv, q * s, (q + 1) * s).sum();
            }
            int rows = Arrays.stream(recv).sum();
            int[] blockStart = new int[ep * s]; // first received row of block (q, l)
            for (int b = 1; b < ep * s; b++) {
                blockStart[b] = blockStart[b - 1] + recv[b - 1];
            }
            int[] toLocal = new int[rows];
            int[] toReceived = new int[rows];
            int[] offsets = new int[s + 1];
            int next = 0;
            for (int l = 0; l < s; l++) {
                for (int q = 0; q < ep; q++) {
                    int b = q * s + l;
                    for (int i = 0; i < recv[b]; i++, next++) {
                        toLocal[next] = blockStart[b] + i;
                        toReceived[blockStart[b] + i] = next;
                    }
                }
                offsets[l + 1] = next;
            }
            selectReceivedRows(rows);
            localOffsets.copyFrom(offsets);
            if (rows > 0) {
                toLocalOrder.copyFrom(toLocal);
                toReceivedOrder.copyFrom(toReceived);
            }
        }

        private void selectReceivedRows(int rows) {
            if (rows > rowCapacity) {
                if (rowScope != null) {
                    rowScope.close();
                }
                rowScope = TensorScope.shared(backend);
                rowCapacity = Math.max(rows, 1);
                receivedBuffer = rowScope.allocate("received", dtype, rowCapacity, hidden);
                xLocalBuffer = rowScope.allocate("xLocal", dtype, rowCapacity, hidden);
                outLocalBuffer = rowScope.allocate("outLocal", dtype, rowCapacity, hidden);
                gradXLocalBuffer = rowScope.allocate("gradXLocal", dtype, rowCapacity, hidden);
                toLocalBuffer = rowScope.allocate("toLocalOrder", DType.I32, rowCapacity);
                toReceivedBuffer = rowScope.allocate("toReceivedOrder", DType.I32, rowCapacity);
            }
            received = receivedBuffer.slice(0, rows);
            xLocal = xLocalBuffer.slice(0, rows);
            outLocal = outLocalBuffer.slice(0, rows);
            gradXLocal = gradXLocalBuffer.slice(0, rows);
            toLocalOrder = toLocalBuffer.slice(0, rows);
            toReceivedOrder = toReceivedBuffer.slice(0, rows);
        }

        @Override
        public void close() {
            if (rowScope != null) {
                rowScope.close();
                rowCapacity = -1;
            }
            if (scope != null) {
                scope.close();
            }
        }
    }
}
