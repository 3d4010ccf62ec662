/* The http unit test executable: the gate, authorities and the rest of the module. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

extern const struct CMUnitTest gate_tests[];
extern const size_t gate_tests_n;
extern const struct CMUnitTest http_tests[];
extern const size_t http_tests_n;
extern const struct CMUnitTest parser_hostile_tests[];
extern const size_t parser_hostile_tests_n;
extern const struct CMUnitTest authority_tests[];
extern const size_t authority_tests_n;
extern const struct CMUnitTest keep_alive_tests[];
extern const size_t keep_alive_tests_n;

int main(void)
{
    int failed = _cmocka_run_group_tests("http_gate", gate_tests, gate_tests_n, NULL, NULL);
    failed += _cmocka_run_group_tests("http", http_tests, http_tests_n, NULL, NULL);
    failed += _cmocka_run_group_tests("http_parser_hostile", parser_hostile_tests,
                                      parser_hostile_tests_n, NULL, NULL);
    failed +=
        _cmocka_run_group_tests("http_authority", authority_tests, authority_tests_n, NULL, NULL);
    failed += _cmocka_run_group_tests("http_keep_alive", keep_alive_tests, keep_alive_tests_n, NULL,
                                      NULL);
    return failed;
}
