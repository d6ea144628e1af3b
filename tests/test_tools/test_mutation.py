"""tools/mutation.py: the equivalent-mutant list, module names, and the no_grad rewrite."""
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
