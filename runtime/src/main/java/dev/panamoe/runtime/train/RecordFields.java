package dev.panamoe.runtime.train;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.RecordComponent;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** A record's components as text, for checkpoint headers and reports, and back. */
final class RecordFields {
    private RecordFields() {
    }

    /** Component name to {@code toString()} of its value ("" for null), in declaration order. */
    static Map<String, String> of(Record record) {
        Map<String, String> map = new LinkedHashMap<>();
        for (RecordComponent c : record.getClass().getRecordComponents()) {
            try {
                Object value = c.getAccessor().invoke(record);
                map.put(c.getName(), value == null ? "" : value.toString());
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("cannot read " + c.getName() + " of " + record.getClass().getSimpleName(), e);
            }
        }
        return map;
    }

    /** The fields of a record's toString ("GptMoeConfig[vocab=64, maxSeq=64, ...]"), null for null. */
    static Map<String, String> fromToString(String text) {
        if (text == null) {
            return null;
        }
        Map<String, String> fields = new LinkedHashMap<>();
        Matcher m = RECORD_FIELD.matcher(text.substring(text.indexOf('[') + 1));
        while (m.find()) {
            fields.put(m.group(1), m.group(2));
        }
        return fields;
    }

    private static final Pattern RECORD_FIELD = Pattern.compile("(\\w+)=([^,\\]]*)");

    /**
     * The record {@link #of} wrote as fields: each component from its text (numbers, booleans,
     * enum names, strings and paths; "" is null for a string, path or enum, and so is a missing one,
     * which a field added after the text was written is).
     *
     * @throws IllegalArgumentException naming the field whose text does not parse, or the record's
     *         own validation message
     */
    static <R extends Record> R parse(Class<R> type, Map<String, String> fields) {
        RecordComponent[] components = type.getRecordComponents();
        Class<?>[] types = new Class<?>[components.length];
        Object[] values = new Object[components.length];
        for (int i = 0; i < components.length; i++) {
            types[i] = components[i].getType();
            String name = components[i].getName();
            String text = fields.get(name);
            try {
                values[i] = value(types[i], text == null ? "" : text);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(name + ": cannot read '" + text + "' as " + types[i].getSimpleName(), e);
            }
        }
        try {
            return type.getDeclaredConstructor(types).newInstance(values);
        } catch (InvocationTargetException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw new IllegalStateException("cannot make a " + type.getSimpleName() + ": " + e.getCause(), e.getCause());
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot make a " + type.getSimpleName() + ": " + e, e);
        }
    }

    private static Object value(Class<?> type, String text) {
        if (type == String.class) {
            return text.isEmpty() ? null : text;
        } else if (type == Path.class) {
            return text.isEmpty() ? null : Path.of(text);
        } else if (type == int.class) {
            return Integer.parseInt(text);
        } else if (type == long.class) {
            return Long.parseLong(text);
        } else if (type == float.class) {
            return Float.parseFloat(text);
        } else if (type == double.class) {
            return Double.parseDouble(text);
        } else if (type == boolean.class) {
            if (!text.equals("true") && !text.equals("false")) {
                throw new IllegalArgumentException("not a boolean: " + text);
            }
            return Boolean.parseBoolean(text);
        } else if (type.isEnum()) {
            return text.isEmpty() ? null : enumValue(type.asSubclass(Enum.class), text);
        }
        throw new IllegalArgumentException("no reader for " + type.getName());
    }

    private static <E extends Enum<E>> E enumValue(Class<E> type, String text) {
        return Enum.valueOf(type, text.toUpperCase(Locale.ROOT));
    }
}
