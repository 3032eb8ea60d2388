package org.qimg.nbd;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

import org.qimg.Extent;

/**
 * The metadata contexts this server offers for NBD_CMD_BLOCK_STATUS, each a function of one
 * {@link Extent}: both are derived from the engine's single extent stream.
 */
enum MetaContext {
    /**
     * proto.md "base:allocation": NBD_STATE_HOLE when no layer stores the bytes, NBD_STATE_ZERO when
     * they read as zeroes by metadata alone. qemu-nbd maps its block status the same way: HOLE when
     * BDRV_BLOCK_DATA is clear, ZERO when BDRV_BLOCK_ZERO is set.
     */
    BASE_ALLOCATION("base", "allocation") {
        @Override
        int status(Extent extent) {
            return (extent.data() ? 0 : Nbd.STATE_HOLE) | (extent.zero() ? Nbd.STATE_ZERO : 0);
        }
    },
    /**
     * qemu's docs/interop/nbd.rst "qemu:allocation-depth": 0 when no layer allocates the range, 1 for
     * the top layer, 2 for its backing image, and so on. A range past the end of a shorter backing
     * image counts, as in QEMU 7.2, as allocated one layer below the one whose backing ends there.
     */
    QEMU_ALLOCATION_DEPTH("qemu", "allocation-depth") {
        @Override
        int status(Extent extent) {
            if (extent.beyondBacking()) {
                return extent.depth() + 2;
            }
            return extent.present() ? extent.depth() + 1 : 0;
        }
    };

    final String namespace;
    final String leaf;
    final String contextName;

    MetaContext(String namespace, String leaf) {
        this.namespace = namespace;
        this.leaf = leaf;
        this.contextName = namespace + ":" + leaf;
    }

    /** The 32-bit status flags of {@code extent} in this context. */
    abstract int status(Extent extent);

    /** The id this server gives the context in NBD_REP_META_CONTEXT after a SET (never 0). */
    int id() {
        return ordinal() + 1;
    }

    static MetaContext ofId(int id) {
        return values()[id - 1];
    }

    /**
     * The contexts of {@code offered} that {@code queries} select. With {@code list} (for
     * NBD_OPT_LIST_META_CONTEXT) no query means every context, and an empty leaf ("base:", "qemu:")
     * is a wildcard for its namespace; for NBD_OPT_SET_META_CONTEXT only full names select. Queries of
     * an unknown namespace or leaf select nothing, as the spec requires.
     */
    static List<MetaContext> select(Set<MetaContext> offered, List<String> queries, boolean list) {
        if (list && queries.isEmpty()) {
            return List.copyOf(offered);
        }
        Set<MetaContext> selected = new LinkedHashSet<>();
        for (String query : queries) {
            for (MetaContext context : offered) {
                if (query.equals(context.contextName)
                        || (list && query.equals(context.namespace + ":"))) {
                    selected.add(context);
                }
            }
        }
        return new ArrayList<>(selected);
    }
}
