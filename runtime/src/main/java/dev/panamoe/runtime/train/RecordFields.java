package dev.panamoe.runtime.train;

import java.lang.reflect.RecordComponent;
import java.util.LinkedHashMap;
import java.util.Map;

/** A record's components as text, for checkpoint headers and reports. */
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
}
