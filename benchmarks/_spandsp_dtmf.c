/* Anchor for benchmarks/dtmf.py: spandsp's dtmf_rx over raw int16 files.
 *
 * Usage: _spandsp_dtmf [-r REPEAT] FILE...
 * Each FILE holds raw native-endian int16 samples at 8 kHz. For each file a fresh
 * dtmf_rx context processes the samples in 160-sample (20 ms) chunks, REPEAT times;
 * the program prints one line per file: "<digits>\t<cpu seconds>" (the digits of the
 * first pass, "-" if none). CPU time is process CPU time around the dtmf_rx calls only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <spandsp.h>

#define CHUNK 160
#define MAX_OUT 4096

static void on_digits(void *user_data, const char *digits, int len)
{
    char *out = (char *) user_data;
    size_t have = strlen(out);
    if (have + (size_t) len >= MAX_OUT)
        len = (int) (MAX_OUT - 1 - have);
    memcpy(out + have, digits, (size_t) len);
    out[have + (size_t) len] = '\0';
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int repeat = 1;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "-r") == 0) {
        repeat = atoi(argv[2]);
        first = 3;
    }
    if (first >= argc || repeat < 1) {
        fprintf(stderr, "usage: %s [-r REPEAT] FILE...\n", argv[0]);
        return 2;
    }
    for (int f = first; f < argc; f++) {
        FILE *fp = fopen(argv[f], "rb");
        if (fp == NULL) {
            perror(argv[f]);
            return 1;
        }
        fseek(fp, 0, SEEK_END);
        long bytes = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        long n = bytes / 2;
        int16_t *amp = malloc((size_t) (n > 0 ? n : 1) * sizeof(int16_t));
        if (amp == NULL || fread(amp, sizeof(int16_t), (size_t) n, fp) != (size_t) n) {
            fprintf(stderr, "%s: read failed\n", argv[f]);
            return 1;
        }
        fclose(fp);
        char digits[MAX_OUT];
        char scratch[MAX_OUT];
        double cpu = 0.0;
        for (int r = 0; r < repeat; r++) {
            char *out = (r == 0) ? digits : scratch;
            out[0] = '\0';
            dtmf_rx_state_t *s = dtmf_rx_init(NULL, on_digits, out);
            double t0 = cpu_now();
            for (long i = 0; i < n; i += CHUNK) {
                int len = (n - i < CHUNK) ? (int) (n - i) : CHUNK;
                dtmf_rx(s, amp + i, len);
            }
            cpu += cpu_now() - t0;
            dtmf_rx_free(s);
        }
        printf("%s\t%.6f\n", digits[0] ? digits : "-", cpu);
        free(amp);
    }
    return 0;
}
