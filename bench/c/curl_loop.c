/* The practical floor for a libcurl client: one easy handle reused for N
 * sequential POSTs of the same body over one keep-alive connection, with
 * CURLOPT_NOSIGNAL, the same headers graphcall sends, and the response
 * discarded (nothing decoded).
 *
 *   curl_loop URL BODY_FILE N [CA_FILE [h1|h2]]   prints "elapsed <seconds of the loop>"
 *   CA_FILE: trust this PEM (https); h1 or h2: the HTTP version to ask for (ALPN). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <curl/curl.h>

static size_t discard(char *data, size_t size, size_t n, void *ud)
{
	(void)data;
	(void)ud;
	return size * n;
}

int main(int argc, char **argv)
{
	static char body[65536];
	struct curl_slist *h = NULL;
	size_t len;
	long n, status = 0;
	FILE *f;
	CURL *easy;
	struct timespec t0, t1;

	if (argc < 4 || argc > 6) {
		fprintf(stderr, "usage: curl_loop URL BODY_FILE N [CA_FILE [h1|h2]]\n");
		return 2;
	}
	if (!(f = fopen(argv[2], "rb"))) {
		perror(argv[2]);
		return 2;
	}
	len = fread(body, 1, sizeof body, f);
	fclose(f);
	n = atol(argv[3]);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	easy = curl_easy_init();
	h = curl_slist_append(h, "Expect:");
	h = curl_slist_append(h, "Authorization: Bearer x");
	h = curl_slist_append(h, "Accept: application/json");
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "client-request-id: 3f2b8c1e-2a4d-4c7e-9b1a-5d6e7f809a1b");
	h = curl_slist_append(h, "User-Agent: curl_loop");
	curl_easy_setopt(easy, CURLOPT_URL, argv[1]);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
	if (argc > 4)
		curl_easy_setopt(easy, CURLOPT_CAINFO, argv[4]);
	if (argc > 5)
		curl_easy_setopt(easy, CURLOPT_HTTP_VERSION,
				 argv[5][1] == '2' ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < n; i++) {
		CURLcode rc = curl_easy_perform(easy);
		if (rc != CURLE_OK) {
			fprintf(stderr, "curl_loop: request %ld: %s\n", i + 1, curl_easy_strerror(rc));
			return 1;
		}
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
		if (status != 201) {
			fprintf(stderr, "curl_loop: request %ld: HTTP %ld\n", i + 1, status);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("elapsed %.6f\n", (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	curl_slist_free_all(h);
	curl_easy_cleanup(easy);
	curl_global_cleanup();
	return 0;
}
