"""Unit 05 (weight initialization): classic wrong answers, broken code and correct alternatives."""
from course_grading.banks import Variant

_GAIN_TABLE = '''
def calculate_gain(nonlinearity, param=None):
    """The recommended gain, looked up in a table."""
    table = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5 / 3, "relu": 2 ** 0.5}
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return (2 / (1 + slope * slope)) ** 0.5
    if nonlinearity not in table:
        raise ValueError(f"unknown nonlinearity {nonlinearity}")
    return table[nonlinearity]
'''
_GAIN_TABLE_CHECK = """    if nonlinearity not in table:
        raise ValueError(f"unknown nonlinearity {nonlinearity}")
"""

_XAVIER_UNIFORM_FROM_RANDOM = '''
def xavier_uniform(fan_in, fan_out, gain=1.0, rng=None):
    """Uniform on [-bound, bound) built from rng.random()."""
    if rng is None:
        rng = np.random.default_rng()
    bound = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return (rng.random((fan_in, fan_out)) * 2.0 - 1.0) * bound
'''

_BOX_MULLER = '''
def xavier_normal(fan_in, fan_out, gain=1.0, rng=None):
    """Normal draws made by hand with the Box-Muller transform."""
    rng = np.random.default_rng() if rng is None else rng
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    u1 = {u1}
    u2 = rng.random((fan_in, fan_out))
    return std * np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
'''

_XAVIER_NORMAL_TRANSPOSED_BACK = '''
def xavier_normal(fan_in, fan_out, gain=1.0, rng=None):
    """Drawn in torch's (fan_out, fan_in) layout, then transposed to (fan_in, fan_out)."""
    rng = np.random.default_rng() if rng is None else rng
    std = gain * (2.0 / (fan_in + fan_out)) ** 0.5
    return rng.normal(0.0, std, size=(fan_out, fan_in)).T
'''

_KAIMING_UNIFORM_INLINE_GAIN = '''
def kaiming_uniform(fan_in, fan_out, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """The gain worked out inline, the fan picked from a dict."""
    rng = np.random.default_rng(rng)
    fan = {"fan_in": fan_in, "fan_out": fan_out}[mode]
    if nonlinearity == "leaky_relu":
        gain = np.sqrt(2.0 / (1.0 + a ** 2))
    else:
        gain = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3.0, "relu": np.sqrt(2.0)}[nonlinearity]
    bound = gain * np.sqrt(3.0 / fan)
    return rng.uniform(low=-bound, high=bound, size=(fan_in, fan_out))
'''

_KAIMING_NORMAL_RNG_NORMAL = '''
def kaiming_normal(fan_in, fan_out, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """rng.normal with the std as scale; default_rng(None) makes a fresh generator."""
    rng = np.random.default_rng(rng)
    fan = fan_in if mode == "fan_in" else fan_out
    return rng.normal(0.0, calculate_gain(nonlinearity, a) / np.sqrt(fan), size=(fan_in, fan_out))
'''

_KAIMING_NORMAL_TORCH = '''
def kaiming_normal(fan_in, fan_out, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """torch does the work (the exercise asks for numpy), seeded from rng."""
    rng = np.random.default_rng() if rng is None else rng
    generator = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    weight = torch.empty(fan_out, fan_in, dtype=torch.float64)
    torch.nn.init.kaiming_normal_(weight, a=a, mode=mode, nonlinearity=nonlinearity, generator=generator)
    return weight.numpy().T
'''

VARIANTS = [
    # calculate_gain
    Variant("relu gain 1 instead of sqrt(2)", cell="calculate_gain",
            replace=(("return math.sqrt(2.0)\n", "return 1.0\n"),),
            breaks=("test_calculate_gain",), says="calculate_gain('relu'"),
    Variant("tanh gain 1", cell="calculate_gain", replace=(("return 5.0 / 3.0", "return 1.0"),),
            breaks=("test_calculate_gain",), says="calculate_gain('tanh'"),
    Variant("leaky_relu gain without the slope", cell="calculate_gain",
            replace=(("return math.sqrt(2.0 / (1.0 + slope ** 2))", "return math.sqrt(2.0)"),),
            breaks=("test_calculate_gain",), says="leaky_relu"),
    Variant("leaky_relu slope not squared", cell="calculate_gain",
            replace=(("(1.0 + slope ** 2)", "(1.0 + slope)"),),
            breaks=("test_calculate_gain",), says="leaky_relu"),
    Variant("slope 0 taken for the default 0.01", cell="calculate_gain",
            replace=(("slope = 0.01 if param is None else float(param)", "slope = param or 0.01"),),
            breaks=("test_calculate_gain",), says="calculate_gain('leaky_relu', 0.0)"),
    Variant("leaky_relu default slope 0", cell="calculate_gain",
            replace=(("slope = 0.01 if param is None", "slope = 0.0 if param is None"),),
            breaks=("test_calculate_gain",), says="leaky_relu"),
    Variant("unknown nonlinearity gets gain 1 (no ValueError)", cell="calculate_gain",
            replace=(('raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")', "return 1.0"),),
            breaks=("test_calculate_gain",), says="raise a ValueError"),
    Variant("unknown nonlinearity raises KeyError (bare table lookup)", cell="calculate_gain",
            source=_GAIN_TABLE.replace(_GAIN_TABLE_CHECK, ""),
            breaks=("test_calculate_gain",), says="Expected a ValueError"),
    Variant("calculate_gain left unimplemented", cell="calculate_gain",
            source="def calculate_gain(nonlinearity, param=None):\n    raise NotImplementedError()\n",
            breaks=("test_calculate_gain", "test_kaiming_uniform", "test_kaiming_normal"),
            says="calculate_gain still raises NotImplementedError"),
    Variant("gain table as a dict", cell="calculate_gain", source=_GAIN_TABLE),
    # xavier_uniform
    Variant("normal std used as uniform bound", cell="xavier_uniform",
            replace=(("math.sqrt(6.0 /", "math.sqrt(2.0 /"),),
            breaks=("test_xavier_uniform",), says="standard deviation"),
    Variant("xavier gain ignored", cell="xavier_uniform",
            replace=(("bound = gain * math.sqrt", "bound = math.sqrt"),),
            breaks=("test_xavier_uniform",), says="gain"),
    Variant("uniform on [0, bound) instead of [-bound, bound]", cell="xavier_uniform",
            replace=(("rng.uniform(-bound, bound,", "rng.uniform(0.0, bound,"),),
            breaks=("test_xavier_uniform",), says="mean"),
    Variant("fixed seed instead of the rng given", cell="xavier_uniform",
            replace=(("rng = np.random.default_rng() if rng is None else rng", "rng = np.random.default_rng(42)"),),
            breaks=("test_xavier_uniform",), says="same array"),
    Variant("uniform from rng.random()*2-1", cell="xavier_uniform", source=_XAVIER_UNIFORM_FROM_RANDOM),
    # xavier_normal
    Variant("shape transposed (fan_out, fan_in)", cell="xavier_normal",
            replace=(("rng.standard_normal((fan_in, fan_out))", "rng.standard_normal((fan_out, fan_in))"),),
            breaks=("test_xavier_normal",), says="shape (300, 400)"),
    Variant("uniform bound used as normal std", cell="xavier_normal",
            replace=(("math.sqrt(2.0 /", "math.sqrt(6.0 /"),),
            breaks=("test_xavier_normal",), says="standard deviation"),
    Variant("xavier std from fan_in alone", cell="xavier_normal",
            replace=(("math.sqrt(2.0 / (fan_in + fan_out))", "math.sqrt(1.0 / fan_in)"),),
            breaks=("test_xavier_normal",), says="standard deviation"),
    Variant("exception: standard_normal called like randn", cell="xavier_normal",
            replace=(("rng.standard_normal((fan_in, fan_out))", "rng.standard_normal(fan_in, fan_out)"),),
            breaks=("test_xavier_normal",), says="raised"),
    Variant("NaN output: Box-Muller with u1 from (-1, 1)", cell="xavier_normal",
            source=_BOX_MULLER.replace("{u1}", "rng.uniform(-1.0, 1.0, size=(fan_in, fan_out))"),
            breaks=("test_xavier_normal",), says="nan"),
    Variant("Box-Muller by hand", cell="xavier_normal",
            source=_BOX_MULLER.replace("{u1}", "1.0 - rng.random((fan_in, fan_out))")),
    Variant("drawn as (fan_out, fan_in) and transposed", cell="xavier_normal", source=_XAVIER_NORMAL_TRANSPOSED_BACK),
    # kaiming_uniform
    Variant("uniform bound without the sqrt(3)", cell="kaiming_uniform",
            replace=(("bound = math.sqrt(3.0) * std", "bound = std"),),
            breaks=("test_kaiming_uniform",), says="standard deviation"),
    Variant("mode ignored", cell="kaiming_uniform",
            replace=(('fan = fan_in if mode == "fan_in" else fan_out', "fan = fan_in"),),
            breaks=("test_kaiming_uniform",), says="mode='fan_out'"),
    Variant("rng ignored: np.random directly", cell="kaiming_uniform",
            replace=(("return rng.uniform(", "return np.random.uniform("),),
            breaks=("test_kaiming_uniform",), says="same seed"),
    Variant("normal draws instead of uniform", cell="kaiming_uniform",
            replace=(("return rng.uniform(-bound, bound, size=(fan_in, fan_out))",
                      "return rng.normal(0.0, std, size=(fan_in, fan_out))"),),
            breaks=("test_kaiming_uniform",), says="uniform"),
    Variant("negative slope a not passed to the gain", cell="kaiming_uniform",
            replace=(("calculate_gain(nonlinearity, a)", "calculate_gain(nonlinearity)"),),
            breaks=("test_kaiming_uniform",), says="a=1.0"),
    Variant("wrong shape: a flat vector", cell="kaiming_uniform",
            replace=(("size=(fan_in, fan_out))", "size=fan_in * fan_out)"),),
            breaks=("test_kaiming_uniform",), says="shape"),
    Variant("gain inline, fan from a dict, default_rng(rng)", cell="kaiming_uniform",
            source=_KAIMING_UNIFORM_INLINE_GAIN),
    # kaiming_normal
    Variant("negative slope a ignored (kaiming_normal)", cell="kaiming_normal",
            replace=(("calculate_gain(nonlinearity, a)", "calculate_gain(nonlinearity)"),),
            breaks=("test_kaiming_normal",), says="a=0.5"),
    Variant("xavier_normal on a fixed seed of its own (rng ignored)", cell="xavier_normal",
            replace=(("rng = np.random.default_rng() if rng is None else rng",
                      "rng = np.random.default_rng(0)"),),
            breaks=("test_xavier_normal",), says="seeds 7 and 8"),
    Variant("fan_out instead of fan_in", cell="kaiming_normal",
            replace=(('fan = fan_in if mode == "fan_in" else fan_out', 'fan = fan_out if mode == "fan_in" else fan_in'),),
            breaks=("test_kaiming_normal",), says="standard deviation"),
    Variant("kaiming gain ignored", cell="kaiming_normal",
            replace=(("std = calculate_gain(nonlinearity, a) / math.sqrt(fan)", "std = 1.0 / math.sqrt(fan)"),),
            breaks=("test_kaiming_normal",), says="standard deviation"),
    Variant("variance used as std", cell="kaiming_normal",
            replace=(("std = calculate_gain(nonlinearity, a) / math.sqrt(fan)",
                      "std = calculate_gain(nonlinearity, a) ** 2 / fan"),),
            breaks=("test_kaiming_normal",), says="standard deviation"),
    Variant("rng=None seeds a fixed generator", cell="kaiming_normal",
            replace=(("rng = np.random.default_rng() if rng is None else rng",
                      "rng = np.random.default_rng(0) if rng is None else rng"),),
            breaks=("test_kaiming_normal",), says="rng=None"),
    Variant("infinite loop: clipping until nothing is left", cell="kaiming_normal",
            replace=(("    return std * rng.standard_normal((fan_in, fan_out))",
                      "    W = std * rng.standard_normal((fan_in, fan_out))\n"
                      "    while np.abs(W).max() > 0:\n"
                      "        W = np.clip(W, -2 * std, 2 * std)\n"
                      "    return W"),),
            breaks=("test_kaiming_normal",), says="did not finish"),
    Variant("torch.nn.init inside the function", cell="kaiming_normal",
            source=_KAIMING_NORMAL_TORCH, breaks=("test_kaiming_normal",), says="numpy only"),
    Variant("rng.normal(0, std) and default_rng(rng)", cell="kaiming_normal", source=_KAIMING_NORMAL_RNG_NORMAL),
]
