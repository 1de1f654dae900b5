package dev.panamoe.runtime.train;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The safetensors format (Hugging Face): an 8-byte little-endian header length N, N bytes of JSON
 * {@code {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ..., "__metadata__": {string:
 * string}}}, then the tensors' raw little-endian data, each at [begin, end) of the bytes after the
 * header, together covering them without gaps. Reads and writes F32 and BF16 tensors as floats,
 * one tensor at a time.
 */
public final class SafeTensors {
    private static final String METADATA = "__metadata__";
    /** Larger than any header of a real model (an entry is ~100 bytes), small enough to read at once. */
    private static final long MAX_HEADER = 100L << 20;

    private SafeTensors() {
    }

    /** A tensor of a file: its name, dtype (F32 or BF16), shape, and where its data is after the header. */
    public record Info(String name, DType dtype, int[] shape, long begin, long end) {
        public long numel() {
            return Arrays.stream(shape).asLongStream().reduce(1, Math::multiplyExact);
        }
    }

    /** A tensor to write: its name, the dtype to store it in (F32 or BF16) and its shape. */
    public record Spec(String name, DType dtype, int[] shape) {
    }

    /** The values of tensor {@code index} of the list being written, asked for when its turn comes. */
    @FunctionalInterface
    public interface Values {
        float[] of(int index);
    }

    /**
     * Writes the tensors to {@code file} through a temporary file in its directory, renamed into
     * place once whole: a failure (of {@code values} too) leaves no file, or the previous one.
     */
    public static void write(Path file, List<Spec> tensors, Map<String, String> metadata, Values values) {
        JsonObject header = new JsonObject();
        if (!metadata.isEmpty()) {
            header.add(METADATA, Checkpoint.strings(metadata));
        }
        long offset = 0;
        for (Spec t : tensors) {
            long bytes = Math.multiplyExact(new Info(t.name(), t.dtype(), t.shape(), 0, 0).numel(), width(t.dtype()));
            JsonObject o = new JsonObject();
            o.addProperty("dtype", name(t.dtype()));
            o.add("shape", Checkpoint.shape(t.shape()));
            JsonArray offsets = new JsonArray();
            offsets.add(offset);
            offsets.add(offset + bytes);
            o.add("data_offsets", offsets);
            if (header.has(t.name()) || t.name().equals(METADATA)) {
                throw new IllegalArgumentException("tensors: the name '" + t.name() + "' appears twice or is reserved");
            }
            header.add(t.name(), o);
            offset += bytes;
        }
        byte[] json = header.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8; // the format pads the header with spaces to align the data
        ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(padded).put(json);
        while (head.hasRemaining()) {
            head.put((byte) ' ');
        }
        Checkpoint.writeAtomically(file, "safetensors file", channel -> {
            Checkpoint.writeFully(channel, head.flip());
            for (int i = 0; i < tensors.size(); i++) {
                Spec t = tensors.get(i);
                float[] v = values.of(i);
                if (v.length != new Info(t.name(), t.dtype(), t.shape(), 0, 0).numel()) {
                    throw new IllegalArgumentException("values: " + v.length + " for tensor '" + t.name() + "' of shape "
                            + Arrays.toString(t.shape()));
                }
                Checkpoint.writeFully(channel, encode(v, t.dtype()));
            }
        });
    }

    private static ByteBuffer encode(float[] v, DType dtype) {
        ByteBuffer b = ByteBuffer.allocate(Math.multiplyExact(v.length, width(dtype))).order(ByteOrder.LITTLE_ENDIAN);
        if (dtype == DType.F32) {
            b.asFloatBuffer().put(v);
        } else {
            for (float x : v) {
                b.putShort(Tensor.floatToBf16(x));
            }
        }
        return b.rewind();
    }

    private static int width(DType dtype) {
        return switch (dtype) {
            case F32 -> 4;
            case BF16 -> 2;
            default -> throw new IllegalArgumentException("dtype: safetensors files here hold F32 or BF16, got " + dtype);
        };
    }

    private static String name(DType dtype) {
        width(dtype);
        return dtype == DType.F32 ? "F32" : "BF16";
    }

    /** Opens {@code file}, checking its header. */
    public static Reader open(Path file) {
        return new Reader(file);
    }

    /** An open safetensors file whose header was checked: every tensor's data lies in the file, without gaps. */
    public static final class Reader implements AutoCloseable {
        private final Path file;
        private final FileChannel channel;
        private final long dataStart;
        private final Map<String, Info> tensors = new LinkedHashMap<>();
        private final Map<String, String> metadata = new LinkedHashMap<>();

        private Reader(Path file) {
            this.file = file;
            if (!Files.isRegularFile(file)) {
                throw problem("does not exist or is not a regular file");
            }
            try {
                this.channel = FileChannel.open(file, StandardOpenOption.READ);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
            }
            try {
                long size = channel.size();
                if (size < 8) {
                    throw problem("is not a safetensors file: " + size + " bytes, less than its 8-byte header length");
                }
                long n = Checkpoint.readAt(channel, 0, 8).getLong();
                if (n < 2 || n > MAX_HEADER || n > size - 8) {
                    throw problem("is not a safetensors file: its header length " + n + " does not fit in its " + size
                            + " bytes");
                }
                this.dataStart = 8 + n;
                JsonObject header;
                try {
                    header = JsonParser.parseString(StandardCharsets.UTF_8.decode(Checkpoint.readAt(channel, 8, (int) n)).toString())
                            .getAsJsonObject();
                } catch (RuntimeException e) { // Gson's unchecked types for a malformed document
                    throw problem("is not a safetensors file: its header is not a JSON object");
                }
                parse(header, size - dataStart);
            } catch (IOException | RuntimeException e) {
                close();
                if (e instanceof IOException io) {
                    throw new UncheckedIOException("cannot read " + file + ": " + io.getMessage(), io);
                }
                throw (RuntimeException) e;
            }
        }

        private void parse(JsonObject header, long dataBytes) {
            for (Map.Entry<String, JsonElement> e : header.entrySet()) {
                try {
                    if (e.getKey().equals(METADATA)) {
                        e.getValue().getAsJsonObject().entrySet()
                                .forEach(m -> metadata.put(m.getKey(), m.getValue().getAsString()));
                    } else {
                        tensors.put(e.getKey(), info(e.getKey(), e.getValue().getAsJsonObject()));
                    }
                } catch (CheckpointException bad) {
                    throw bad;
                } catch (RuntimeException bad) {
                    throw problem("has a malformed header entry '" + e.getKey() + "': " + e.getValue());
                }
            }
            long end = 0;
            for (Info t : tensors.values().stream().sorted(Comparator.comparingLong(Info::begin)).toList()) {
                if (t.begin() != end) {
                    throw problem("has tensor '" + t.name() + "' at bytes [" + t.begin() + ", " + t.end() + ") after "
                            + "data ending at " + end + ": tensors must cover the data without gaps or overlaps");
                }
                end = t.end();
            }
            if (end != dataBytes) {
                throw problem("has " + dataBytes + " bytes of data but its tensors describe " + end);
            }
        }

        private Info info(String name, JsonObject o) {
            String dtypeName = o.get("dtype").getAsString();
            DType dtype = switch (dtypeName) {
                case "F32" -> DType.F32;
                case "BF16" -> DType.BF16;
                default -> throw problem("has tensor '" + name + "' of dtype " + dtypeName + "; F32 and BF16 are read");
            };
            JsonArray shapeJson = o.getAsJsonArray("shape");
            int[] shape = Checkpoint.dims(shapeJson);
            if (shape == null) {
                throw problem("has tensor '" + name + "' of negative dimension: " + shapeJson);
            }
            JsonArray offsets = o.getAsJsonArray("data_offsets");
            long begin = offsets.get(0).getAsLong();
            long end = offsets.get(1).getAsLong();
            Info info = new Info(name, dtype, shape, begin, end);
            if (offsets.size() != 2 || begin < 0 || end - begin != Math.multiplyExact(info.numel(), width(dtype))) {
                throw problem("has tensor '" + name + "' whose data_offsets " + offsets + " do not hold "
                        + info.numel() + " " + dtypeName + " values");
            }
            return info;
        }

        public Path file() {
            return file;
        }

        /** The tensors, in the header's order. */
        public List<Info> tensors() {
            return List.copyOf(tensors.values());
        }

        /** The tensor named {@code name}, or null. */
        public Info tensor(String name) {
            return tensors.get(name);
        }

        public Map<String, String> metadata() {
            return Map.copyOf(metadata);
        }

        /** The values of tensor {@code name} (BF16 widened to f32). */
        public float[] read(String name) {
            Info t = tensors.get(name);
            if (t == null) {
                throw problem("has no tensor '" + name + "'");
            }
            try {
                ByteBuffer b = Checkpoint.readAt(channel, dataStart + t.begin(), Math.toIntExact(t.end() - t.begin()));
                float[] v = new float[Math.toIntExact(t.numel())];
                if (t.dtype() == DType.F32) {
                    b.asFloatBuffer().get(v);
                } else {
                    for (int i = 0; i < v.length; i++) {
                        v[i] = Tensor.bf16ToFloat(b.getShort());
                    }
                }
                return v;
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
            }
        }

        private CheckpointException problem(String what) {
            return new CheckpointException(file + " " + what);
        }

        @Override
        public void close() {
            try {
                if (channel != null) {
                    channel.close();
                }
            } catch (IOException ignored) {
                // nothing was written; a failed close of a read-only file loses nothing
            }
        }
    }
}
