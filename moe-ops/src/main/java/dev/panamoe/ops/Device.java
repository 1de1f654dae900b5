package dev.panamoe.ops;

/** Where a tensor's memory lives and where kernels on it run: the host CPU or CUDA device n. */
public record Device(Kind kind, int index) {

    public enum Kind { CPU, CUDA }

    public static final Device CPU = new Device(Kind.CPU, 0);

    public Device {
        if (kind == null) {
            throw new IllegalArgumentException("kind: must not be null");
        }
        if (index < 0 || (kind == Kind.CPU && index != 0)) {
            throw new IllegalArgumentException("index: " + index + " is not a valid " + kind + " device index");
        }
    }

    public static Device cuda(int index) {
        return new Device(Kind.CUDA, index);
    }

    /** "cpu", "cuda" (device 0) or "cuda:N", as {@link #toString()} writes them. */
    public static Device parse(String text) {
        if (text != null) {
            if (text.equals("cpu")) {
                return CPU;
            }
            if (text.equals("cuda")) {
                return cuda(0);
            }
            if (text.matches("cuda:\\d{1,9}")) {
                return cuda(Integer.parseInt(text.substring("cuda:".length())));
            }
        }
        throw new IllegalArgumentException("device: expected cpu, cuda or cuda:N, got '" + text + "'");
    }

    public boolean isCpu() {
        return kind == Kind.CPU;
    }

    @Override
    public String toString() {
        return kind == Kind.CPU ? "cpu" : "cuda:" + index;
    }
}
