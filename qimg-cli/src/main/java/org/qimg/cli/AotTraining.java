package org.qimg.cli;

/**
 * The workload of the build's AOT-cache training run (src/aot/train.sh): the commands that users
 * start most often, over the images given, so that the classes they need are in the cache. Not a
 * user command; its output is thrown away.
 */
public final class AotTraining {
    private AotTraining() {
    }

    public static void main(String[] images) {
        for (String image : images) {
            Qimg.run(new String[] {"map", "--output=json", image});
            Qimg.run(new String[] {"map", image});
            Qimg.run(new String[] {"seek", "--data", image, "0", "65536", "-1"});
            Qimg.run(new String[] {"seek", "--hole", image, "0", "99999999999999"});
        }
        Qimg.run(new String[] {"map", "--output=json", "--start-offset=64k", "-l", "1M", "-f", "qcow2", images[0]});
        Qimg.run(new String[] {"map", "--output=json", "no-such-image.qcow2"});
        Qimg.run(new String[] {"map", "--no-such-option", images[0]});
        Qimg.run(new String[] {"--version"});
        System.out.flush();
        // As the commands do, so that what System.exit loads is in the cache too.
        System.exit(0);
    }
}
