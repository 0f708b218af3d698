#ifndef GEDGE_SHIMS_H
#define GEDGE_SHIMS_H
#include <curl/curl.h>
#include <stddef.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic and cannot be called from Swift;
   these typed wrappers forward one argument of each kind. */
CURLcode gedge_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode gedge_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode gedge_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode gedge_curl_setopt_offset(CURL *handle, CURLoption option, curl_off_t value);

typedef size_t (*gedge_curl_data_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);
CURLcode gedge_curl_setopt_write_cb(CURL *handle, CURLoption option, gedge_curl_data_cb cb);

CURLcode gedge_curl_getinfo_long(CURL *handle, CURLINFO info, long *out);
CURLcode gedge_curl_getinfo_pointer(CURL *handle, CURLINFO info, void **out);
CURLcode gedge_curl_getinfo_double(CURL *handle, CURLINFO info, double *out);

CURLMcode gedge_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value);
#endif

#include <amqp.h>
/* amqp_login is variadic: this wrapper logs in with PLAIN credentials. */
amqp_rpc_reply_t gedge_amqp_login_plain(amqp_connection_state_t state, const char *vhost, int channel_max,
                                        int frame_max, int heartbeat, const char *user, const char *password);
