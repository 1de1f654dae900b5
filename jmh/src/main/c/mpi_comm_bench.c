/*
 * C reference for MpiCommBenchmark: the same collectives, sizes, iteration counts and timing
 * (MPI_Wtime around a loop after a barrier; median of 5 repetitions after at least 3 s of warm-up, reported by rank 0) called
 * from C, so that the FFM binding can be compared with native MPI side by side.
 * Output: one line per case, "c <op> <bytes per rank> <median us> <GB/s>".
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { REPS = 5 };

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int iterations(long bytes) {
  long n = (32L << 20) / bytes;
  return n < 3 ? 3 : (n > 500 ? 500 : (int)n);
}

static void run(const char *op, long floats, int rank, int size) {
  long bytes = floats * 4;
  float *send = malloc(bytes > 0 ? bytes : 4), *recv = malloc(bytes > 0 ? bytes : 4);
  int *counts = malloc(sizeof(int) * size), *displs = malloc(sizeof(int) * size);
  for (long i = 0; i < floats; i++) send[i] = 1.0f / (rank + 1);
  for (int p = 0; p < size; p++) { counts[p] = (int)(floats / size); displs[p] = p * counts[p]; }
  int iters = iterations(bytes);
  double times[REPS], warmed = 0;
  /* Warm-up: loops for at least 3 s (as the Java side needs for its JIT), rank 0 deciding. */
  for (int more = 1; more;) {
    double start = MPI_Wtime();
    for (int i = 0; i < iters; i++) {
      if (strcmp(op, "allReduce") == 0) {
        MPI_Allreduce(MPI_IN_PLACE, send, (int)floats, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      } else {
        MPI_Alltoallv(send, counts, displs, MPI_FLOAT, recv, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
      }
    }
    warmed += MPI_Wtime() - start;
    more = warmed < 3.0;
    MPI_Bcast(&more, 1, MPI_INT, 0, MPI_COMM_WORLD);
  }
  for (int rep = 0; rep < REPS; rep++) {
    MPI_Barrier(MPI_COMM_WORLD);
    double start = MPI_Wtime();
    for (int i = 0; i < iters; i++) {
      if (strcmp(op, "allReduce") == 0) {
        MPI_Allreduce(MPI_IN_PLACE, send, (int)floats, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      } else {
        MPI_Alltoallv(send, counts, displs, MPI_FLOAT, recv, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
      }
    }
    times[rep] = (MPI_Wtime() - start) / iters;
  }
  qsort(times, REPS, sizeof(double), compare);
  if (rank == 0) printf("c %s %ld %.2f %.3f\n", op, bytes, times[REPS / 2] * 1e6, bytes / times[REPS / 2] / 1e9);
  free(send); free(recv); free(counts); free(displs);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const long floats[] = {1024, 65536, 1048576};
  const char *ops[] = {"allReduce", "allToAllV"};
  for (int o = 0; o < 2; o++)
    for (int s = 0; s < 3; s++) run(ops[o], floats[s], rank, size);
  MPI_Finalize();
  return 0;
}
