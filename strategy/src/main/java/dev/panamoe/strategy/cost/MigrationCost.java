package dev.panamoe.strategy.cost;

/**
 * What a placement change costs in one expert-parallel group (every group of the stage moves
 * the same experts at the same time, over different links).
 *
 * @param movedExperts   expert shards that cross a link
 * @param intraNodeBytes bytes moved between devices of one node
 * @param interNodeBytes bytes moved between nodes
 * @param seconds        the transfers at once: the busiest device's sent or received bytes per
 *                       level over that level's bandwidth, plus a latency per message
 * @param bytesByLink    bytesByLink[i][j]: from group rank i to group rank j
 */
public record MigrationCost(int movedExperts, double intraNodeBytes, double interNodeBytes, double seconds,
        double[][] bytesByLink) {

    public double totalBytes() {
        return intraNodeBytes + interNodeBytes;
    }
}
