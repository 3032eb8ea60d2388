package org.qimg;

import java.io.IOException;

/**
 * An image, or one of its backing files, cannot be used as asked. The message names the file and
 * the field or offset at fault, on one line, so a command line can print it as it is.
 */
public class ImageException extends IOException {
    private static final long serialVersionUID = 1L;

    public ImageException(String message) {
        super(message);
    }

    public ImageException(String message, Throwable cause) {
        super(message, cause);
    }

    /** The image uses a feature qimg does not implement (encryption, an unknown incompatible bit). */
    public static final class Unsupported extends ImageException {
        private static final long serialVersionUID = 1L;

        public Unsupported(String message) {
            super(message);
        }
    }

    /** The image's metadata contradicts the format: a field out of range, a table past the end. */
    public static final class Corrupt extends ImageException {
        private static final long serialVersionUID = 1L;

        public Corrupt(String message) {
            super(message);
        }

        public Corrupt(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
