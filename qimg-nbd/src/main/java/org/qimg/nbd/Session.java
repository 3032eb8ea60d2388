package org.qimg.nbd;

import java.util.List;

/**
 * What option haggling agreed on, fixed for the transmission phase.
 *
 * @param export            the export the client entered
 * @param structuredReplies NBD_OPT_STRUCTURED_REPLY was acknowledged
 * @param contexts          the metadata contexts selected for this export, in id order; empty when
 *                          none (BLOCK_STATUS then gets EINVAL)
 * @param flags             the transmission flags sent to the client
 */
record Session(Export export, boolean structuredReplies, List<MetaContext> contexts, int flags) {
    Session {
        contexts = List.copyOf(contexts);
    }
}
