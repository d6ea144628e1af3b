"""tools/mutation.py: the equivalent-mutant list, module names, and the no_grad rewrite."""
import functools
import textwrap

import pytest
import torch

libcst = pytest.importorskip('libcst', reason='mutmut (make mutation) is not installed')


@pytest.fixture(scope='module')
def mutation(load_script):
    return load_script('tools/mutation.py')


def test_equivalent_rows_are_read_from_the_table(mutation, tmp_path):
    doc = tmp_path / 'mutation.md'
    doc.write_text('| mutant | why |\n|---|---|\n'
                   '| `dsc_mm.a.x_f__mutmut_3` | the digest size does not matter |\n'
                   '| `not a mutant name` | ignored |\n'
                   'text `dsc_mm.a.x_g__mutmut_1` outside the table\n')
    assert mutation.equivalent_mutants(str(doc)) == {
        'dsc_mm.a.x_f__mutmut_3': 'the digest size does not matter'}
    assert mutation.equivalent_mutants(str(tmp_path / 'absent.md')) == {}


def test_module_of_functions_and_methods(mutation):
    assert mutation.module_of('dsc_mm.transfer.keys.x_detect_depth__mutmut_3') == \
        'dsc_mm.transfer.keys'
    assert mutation.module_of('dsc_mm.probes.feature_cache.x\u01c1FeatureCache\u01c1key__mutmut_1') \
        == 'dsc_mm.probes.feature_cache'


def test_no_grad_decorator_becomes_a_with_block_that_computes_the_same(mutation):
    source = textwrap.dedent('''
        import torch


        @torch.no_grad()
        def double(x):
            """Doc."""
            y = x * 2
            return y


        @staticmethod
        def untouched(x):
            return x
    ''')
    rewritten = mutation.unwrap_no_grad(source)
    assert '@torch.no_grad()' not in rewritten and '@staticmethod' in rewritten
    scope = {}
    exec(compile(rewritten, 'rewritten.py', 'exec'), scope)
    assert scope['double'].__doc__ == 'Doc.'
    out = scope['double'](torch.ones(2, requires_grad=True))
    assert torch.equal(out, torch.full((2, ), 2.)) and not out.requires_grad


def test_the_hook_calls_the_project_conftest_hook_it_replaces(mutation):
    calls = []
    scope = {'pytest_collection_modifyitems': lambda config, items: calls.append((config, items))}
    exec(compile(mutation.FASTEST_FIRST_HOOK, 'conftest.py', 'exec'), scope)
    scope['pytest_collection_modifyitems']('config', ['item'])
    assert calls == [('config', ['item'])]


def test_with_a_mutant_under_test_the_reached_tests_run_fastest_first(mutation, tmp_path,
                                                                      monkeypatch):
    from types import SimpleNamespace
    scope = {}
    exec(compile(mutation.FASTEST_FIRST_HOOK, 'conftest.py', 'exec'), scope)
    hook = functools.partial(scope['pytest_collection_modifyitems'], None)
    (tmp_path / 'mutmut-stats.json').write_text(
        '{"duration_by_test": {"t::slow": 9.0, "t::fast": 0.01, "t::mid": 0.5}}')
    monkeypatch.chdir(tmp_path)
    names = ['t::slow', 't::new', 't::fast', 't::mid']

    def order():
        items = [SimpleNamespace(nodeid=n) for n in names]
        hook(items)
        return [item.nodeid for item in items]

    monkeypatch.delenv('MUTANT_UNDER_TEST', raising=False)
    assert order() == names  # an ordinary run (and mutmut's stats run) keeps pytest's order
    monkeypatch.setenv('MUTANT_UNDER_TEST', 'stats')
    assert order() == names
    monkeypatch.setenv('MUTANT_UNDER_TEST', 'dsc_mm.a.x_f__mutmut_3')
    assert order() == ['t::fast', 't::mid', 't::slow', 't::new']  # unknown (new) tests last
    (tmp_path / 'mutmut-stats.json').unlink()
    assert order() == names


def test_the_scratch_copy_and_only_it_gets_the_ordering_hook(mutation, repo_root, tmp_path):
    work_dir = tmp_path / 'feature_cache'
    mutation.prepare('feature_cache', str(work_dir))
    original = (repo_root / 'tests' / 'conftest.py').read_text()
    assert (work_dir / 'tests' / 'conftest.py').read_text() == \
        original + mutation.FASTEST_FIRST_HOOK
    assert 'Added by tools/mutation.py' not in original


def test_every_script_an_areas_tests_load_is_copied_into_the_scratch_copy(mutation, repo_root):
    import re
    loaded = set()
    for _, tests in mutation.AREAS.values():
        for selection in tests:
            path = repo_root / selection
            files = path.rglob('*.py') if path.is_dir() else [path] if path.suffix == '.py' \
                else []
            for test_file in files:
                loaded |= set(re.findall(r"load_script\('([^']+)'\)", test_file.read_text()))
    assert 'perf/semantic_scale.py' in loaded  # test_contrast_set's simulated ranks
    for script in loaded:
        assert script.split('/')[0] in mutation.ALSO_COPY, script
