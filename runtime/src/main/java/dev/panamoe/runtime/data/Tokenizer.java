package dev.panamoe.runtime.data;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingRegistry;
import com.knuddels.jtokkit.api.EncodingType;
import com.knuddels.jtokkit.api.IntArrayList;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Text to token ids and back: {@code bytes} (the 256 byte values, any file), or a byte-pair
 * encoding from jtokkit over the file's UTF-8 text: {@code gpt2} (GPT-2's r50k, 50257 ids) or
 * {@code cl100k} (GPT-3.5/4's, 100277 ids). A model trained on a tokenizer's ids has its
 * {@link #vocabSize()}; decoding is exact for every id the encoding assigns.
 */
public final class Tokenizer {

    /** The tokenizer names {@link #of} knows, in the order --help lists them. */
    public static final List<String> NAMES = List.of("bytes", "gpt2", "cl100k");

    /** cl100k leaves ids 100256 and 100261..100275 without a token; they decode to nothing. */
    private static final int CL100K_RANKS = 100256;
    private static final int CL100K_FIRST_GAP = 100261;
    private static final int CL100K_LAST_GAP = 100275;

    private final String name;
    private final int vocab;
    /** Null for bytes. */
    private final Encoding encoding;

    private Tokenizer(String name, int vocab, Encoding encoding) {
        this.name = name;
        this.vocab = vocab;
        this.encoding = encoding;
    }

    /**
     * The tokenizer of that name.
     *
     * @throws IllegalArgumentException naming the unknown name and the known ones
     */
    public static Tokenizer of(String name) {
        return switch (name) {
            case "bytes" -> new Tokenizer(name, 256, null);
            case "gpt2" -> new Tokenizer(name, 50257, Holder.ENCODINGS.getEncoding(EncodingType.R50K_BASE));
            case "cl100k" -> new Tokenizer(name, 100277, Holder.ENCODINGS.getEncoding(EncodingType.CL100K_BASE));
            case null, default -> throw new IllegalArgumentException("tokenizer: unknown name '" + name + "'; known: "
                    + String.join(", ", NAMES));
        };
    }

    /** Loads jtokkit's encodings (megabytes of merge tables) only when a BPE tokenizer is used. */
    private static final class Holder {
        static final EncodingRegistry ENCODINGS = Encodings.newLazyEncodingRegistry();
    }

    public String name() {
        return name;
    }

    /** Token ids lie in [0, vocabSize). */
    public int vocabSize() {
        return vocab;
    }

    /** Whether the tokens are the bytes themselves (a file need not be text). */
    public boolean isBytes() {
        return encoding == null;
    }

    /** The ids of a text (its UTF-8 bytes for {@code bytes}); special-token markers are ordinary text. */
    public int[] encode(String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        return encode(bytes, 0, bytes.length);
    }

    /** The ids of bytes[from, to): the bytes themselves, or the BPE of their UTF-8 text. */
    int[] encode(byte[] bytes, int from, int to) {
        if (encoding == null) {
            int[] ids = new int[to - from];
            for (int i = from; i < to; i++) {
                ids[i - from] = bytes[i] & 0xff;
            }
            return ids;
        }
        return encoding.encodeOrdinary(new String(bytes, from, to - from, StandardCharsets.UTF_8)).toArray();
    }

    /**
     * Where to split bytes near {@code at} so that no character is cut: at itself for bytes, else
     * the start of the UTF-8 character holding byte {@code at}.
     */
    int splitPoint(byte[] bytes, int at) {
        int p = at;
        while (encoding != null && p > 0 && p < bytes.length && (bytes[p] & 0xC0) == 0x80) {
            p--;
        }
        return p;
    }

    /** The bytes the ids stand for; an id the encoding leaves unassigned stands for none. */
    public byte[] decodeBytes(int[] ids) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        IntArrayList assigned = new IntArrayList(ids.length);
        for (int i = 0; i < ids.length; i++) {
            int id = ids[i];
            if (id < 0 || id >= vocab) {
                throw new IllegalArgumentException("ids[" + i + "]: " + id + " is outside [0, " + vocab + ") of tokenizer "
                        + name);
            }
            if (encoding == null) {
                out.write(id);
            } else if (isAssigned(id)) {
                assigned.add(id);
            }
        }
        return encoding == null ? out.toByteArray() : encoding.decodeBytes(assigned);
    }

    /** The text the ids stand for; bytes that are not valid UTF-8 become U+FFFD. */
    public String decode(int[] ids) {
        return new String(decodeBytes(ids), StandardCharsets.UTF_8);
    }

    private boolean isAssigned(int id) {
        return !name.equals("cl100k") || id < CL100K_RANKS || id > CL100K_RANKS && (id < CL100K_FIRST_GAP || id > CL100K_LAST_GAP);
    }

    @Override
    public String toString() {
        return name;
    }
}
