package dev.panamoe.runtime.model;

import dev.panamoe.ops.MoELayer;
import dev.panamoe.ops.Tensor;
import dev.panamoe.ops.TensorScope;
import dev.panamoe.runtime.model.BlockOps.BlockActivations;
import dev.panamoe.runtime.model.BlockOps.HeadActivations;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.function.IntConsumer;

/**
 * Text generation from the {@link GptMoeModel} of a single device by incremental decoding: each block keeps the keys
 * and values of the positions seen so far (a KV cache), so a new token costs one token's pass
 * through the model plus attention over the cache, not a forward over the whole prefix. The
 * logits of {@link #append} are those a full forward over the same prefix gives at its last
 * position (up to float rounding; a capacity-limited MoE may drop tokens in a full forward that
 * a one-token pass keeps).
 *
 * <pre>
 *   try (Generator g = new Generator(model)) {
 *       int[] tokens = g.generate(prompt, 100, new Generator.Sampling(0.8, 40, 1), t -> { });
 *   }
 * </pre>
 * The cache holds {@code maxSeq} positions (the position embedding's length); {@link #generate}
 * continues past it by re-reading the last {@code maxSeq / 2} tokens into an empty cache.
 * Not thread-safe, and the model must not train between calls that share a cache.
 */
public final class Generator implements AutoCloseable {

    /**
     * How the next token is drawn from the logits: temperature 0 or topK 1 take the most likely
     * (greedy), otherwise softmax(logits / temperature) over the topK most likely (all when topK
     * is 0), from a generator seeded by seed.
     */
    public record Sampling(double temperature, int topK, long seed) {
        public Sampling {
            if (!(temperature >= 0) || Double.isInfinite(temperature)) {
                throw new IllegalArgumentException("temperature: must be finite and >= 0, got " + temperature);
            }
            if (topK < 0) {
                throw new IllegalArgumentException("topK: must be >= 1, or 0 for no limit, got " + topK);
            }
        }

        /** Always the most likely token. */
        public static Sampling greedy() {
            return new Sampling(0, 1, 0);
        }

        boolean isGreedy() {
            return temperature == 0 || topK == 1;
        }
    }

    private final GptMoeModel model;
    private final int layers;
    private final int heads;
    private final int headDim;
    private final int capacity;
    private final TensorScope scope;
    private final Tensor encoded;
    private final BlockActivations[] acts;
    private final HeadActivations head;
    private final MoELayer.Workspace[] workspaces;
    /** [layer][position * C + head * headDim + d]: the keys (values) of each position, as qkv holds them. */
    private final float[][] keys;
    private final float[][] values;
    private int position;

    public Generator(GptMoeModel model) {
        GptMoeConfig c = model.config();
        this.model = model;
        this.workspaces = model.newMoeWorkspaces(); // first: a rank of a plan is refused before anything is allocated
        this.layers = c.layers();
        this.heads = c.heads();
        this.headDim = c.hidden() / c.heads();
        this.capacity = c.maxSeq();
        this.scope = TensorScope.shared(model.backend());
        this.encoded = scope.allocate("decode.encoded", model.dtype(), 1, c.hidden());
        this.acts = new BlockActivations[layers];
        for (int l = 0; l < layers; l++) {
            acts[l] = new BlockActivations(scope, c, model.dtype(), "decode.blocks." + l + ".", 1, 1, 1,
                    c.isMoeBlock(l));
        }
        this.head = new HeadActivations(scope, c, model.dtype(), 1);
        long cache = (long) capacity * c.hidden();
        if (cache > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("maxSeq: " + capacity + " x hidden " + c.hidden()
                    + " is too large for one layer's cache");
        }
        this.keys = new float[layers][(int) cache];
        this.values = new float[layers][(int) cache];
    }

    /** Tokens in the cache: the position the next {@link #append} fills. */
    public int position() {
        return position;
    }

    /** The most tokens the cache holds (the model's maxSeq). */
    public int capacity() {
        return capacity;
    }

    /** Empties the cache. */
    public void reset() {
        position = 0;
    }

    /** Feeds the token at the next position; returns the logits [vocab] predicting the one after it. */
    public float[] append(int token) {
        if (position >= capacity) {
            throw new IllegalStateException("position: the cache holds all " + capacity + " positions; reset() first");
        }
        int at = position;
        Tensor logits = model.decodeStep(token, at, encoded, acts, workspaces, head,
                l -> (qkv, att, out) -> attend(l, at, qkv, out));
        position++;
        return logits.toFloatArray();
    }

    /**
     * Causal attention of the new position over the cache: its key and value join the cache, then
     * per head out = sum_s softmax_s(q . k_s / sqrt(D)) v_s, in f32 like the CPU kernel (whose
     * sums run in another order and whose exp is a polynomial: a few f32 ulps apart).
     */
    private void attend(int layer, int at, Tensor qkvTensor, Tensor outTensor) {
        float[] qkv = qkvTensor.toFloatArray();
        int c = heads * headDim;
        System.arraycopy(qkv, c, keys[layer], at * c, c);
        System.arraycopy(qkv, 2 * c, values[layer], at * c, c);
        float[] k = keys[layer];
        float[] v = values[layer];
        float[] out = new float[c];
        float[] a = new float[at + 1];
        float scale = 1.0f / (float) Math.sqrt(headDim);
        for (int h = 0; h < heads; h++) {
            int q = h * headDim;
            float max = Float.NEGATIVE_INFINITY;
            for (int s = 0; s <= at; s++) {
                float dot = 0;
                for (int d = 0; d < headDim; d++) {
                    dot += qkv[q + d] * k[s * c + q + d];
                }
                a[s] = dot * scale;
                max = Math.max(max, a[s]);
            }
            double sum = 0;
            for (int s = 0; s <= at; s++) {
                a[s] = (float) Math.exp(a[s] - max);
                sum += a[s];
            }
            float inv = (float) (1.0 / sum);
            for (int s = 0; s <= at; s++) {
                float w = a[s] * inv;
                for (int d = 0; d < headDim; d++) {
                    out[q + d] += w * v[s * c + q + d];
                }
            }
        }
        outTensor.copyFrom(out);
    }

    /**
     * Appends the prompt (at least one token), then draws count tokens, each fed back; onToken
     * sees each drawn token as it comes. Past the cache's capacity the last capacity / 2 tokens
     * are re-read into an empty cache. Returns the drawn tokens.
     */
    public int[] generate(int[] prompt, int count, Sampling sampling, IntConsumer onToken) {
        if (prompt == null || prompt.length == 0) {
            throw new IllegalArgumentException("prompt: must hold at least one token, got "
                    + (prompt == null ? "null" : "none"));
        }
        if (count < 0) {
            throw new IllegalArgumentException("count: must be >= 0, got " + count);
        }
        int[] context = prompt.length > capacity ? Arrays.copyOfRange(prompt, prompt.length - capacity, prompt.length)
                : prompt;
        int[] history = Arrays.copyOf(context, context.length + count);
        int length = context.length;
        reset();
        float[] logits = null;
        for (int t : context) {
            logits = append(t);
        }
        SplittableRandom random = new SplittableRandom(sampling.seed());
        int[] drawn = new int[count];
        for (int i = 0; i < count; i++) {
            int next = sample(logits, sampling, random);
            drawn[i] = next;
            history[length++] = next;
            onToken.accept(next);
            if (i + 1 == count) {
                break;
            }
            if (position == capacity) {
                reset();
                for (int t : Arrays.copyOfRange(history, length - capacity / 2 - 1, length - 1)) {
                    append(t);
                }
            }
            logits = append(next);
        }
        return drawn;
    }

    /** The next token under sampling; random is used only when the draw is not greedy. */
    static int sample(float[] logits, Sampling sampling, SplittableRandom random) {
        if (sampling.isGreedy()) {
            return argmax(logits);
        }
        int[] candidates = topK(logits, sampling.topK() == 0 ? logits.length : Math.min(sampling.topK(), logits.length));
        double max = logits[argmax(logits)];
        double[] weights = new double[candidates.length];
        double total = 0;
        for (int i = 0; i < candidates.length; i++) {
            weights[i] = Math.exp((logits[candidates[i]] - max) / sampling.temperature());
            total += weights[i];
        }
        double u = random.nextDouble() * total;
        for (int i = 0; i < candidates.length; i++) {
            u -= weights[i];
            if (u < 0) {
                return candidates[i];
            }
        }
        return candidates[candidates.length - 1];
    }

    /** The ids of the k largest logits, in id order; of equal logits at the cut, the lower ids. */
    private static int[] topK(float[] logits, int k) {
        if (k == logits.length) {
            int[] all = new int[k];
            Arrays.setAll(all, i -> i);
            return all;
        }
        float[] sorted = logits.clone();
        Arrays.sort(sorted);
        float cut = sorted[logits.length - k];
        int above = 0;
        for (float x : logits) {
            above += x > cut ? 1 : 0;
        }
        int atCut = k - above;
        int[] ids = new int[k];
        int n = 0;
        for (int i = 0; i < logits.length; i++) {
            if (logits[i] > cut || logits[i] == cut && atCut-- > 0) {
                ids[n++] = i;
            }
        }
        return ids;
    }

    /** The index of the largest logit, the lowest of equals. */
    static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }

    /** Frees the decoding buffers; the model stays open (it is the caller's). */
    @Override
    public void close() {
        for (MoELayer.Workspace ws : workspaces) {
            if (ws != null) {
                ws.close();
            }
        }
        scope.close();
    }
}
