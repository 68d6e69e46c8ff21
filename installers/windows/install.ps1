<#
.SYNOPSIS
    Installs (or updates) hwb-client as the Windows service "HwbClient".

.DESCRIPTION
    1. Creates a Python venv under -InstallDir and installs hwb-client[windows] OFFLINE from -Wheels
       (the wheels the MSI puts beside this script: hwb-client, its pinned dependencies and pywin32,
       built for CPython 3.11 x64).
    2. Registers the service with pywin32 (delayed automatic start), runs it as -ServiceAccount
       (default: the virtual account "NT SERVICE\HwbClient", no password to manage) and sets recovery
       actions: restart after 1 minute, 1 minute, then 10 minutes; the failure count resets daily.
    3. Creates %ProgramData%\HwbClient (configuration, state\, logs\) with an ACL that gives only
       SYSTEM, Administrators and the service account access (the service account may read the
       configuration and change state and logs), and copies the example configuration if none exists.
    The service is NOT started: edit %ProgramData%\HwbClient\hwb-client.toml, enrol each school
    (hwb-client enrol), then Start-Service HwbClient.

.PARAMETER Python
    python.exe of a CPython 3.11 x64 installation (for all users).
.PARAMETER Wheels
    Folder holding the wheels. Default: the "wheels" folder beside this script.
.PARAMETER InstallDir
    Where the venv goes. Default: the folder of this script (the MSI installs to Program Files\HwbClient).
.PARAMETER ServiceAccount
    Account the service runs as. A domain account (for SQL Server Windows authentication to the MIS)
    needs -ServicePassword.
.PARAMETER Uninstall
    Stop and remove the service and the venv. Configuration and state in %ProgramData% are kept.

.EXAMPLE
    PS> & "C:\Program Files\HwbClient\install.ps1" -Python "C:\Program Files\Python311\python.exe"
#>
[CmdletBinding()]
param(
    [string] $Python = "python.exe",
    [string] $Wheels = (Join-Path $PSScriptRoot "wheels"),
    [string] $InstallDir = $PSScriptRoot,
    [string] $ServiceAccount = "NT SERVICE\HwbClient",
    [SecureString] $ServicePassword,
    [switch] $Uninstall
)

$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

$ServiceName = "HwbClient"
$DataDir = Join-Path $env:ProgramData "HwbClient"
$Venv = Join-Path $InstallDir "venv"
$VenvPython = Join-Path $Venv "Scripts\python.exe"

function Assert-Administrator {
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object Security.Principal.WindowsPrincipal($identity)
    if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
        throw "Run this script as Administrator."
    }
}

function Invoke-Checked {
    param([string] $Exe, [string[]] $Arguments)
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Exe $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

function Remove-HwbService {
    if (Get-Service -Name $ServiceName -ErrorAction SilentlyContinue) {
        Stop-Service -Name $ServiceName -ErrorAction SilentlyContinue
        Invoke-Checked $VenvPython @("-m", "hwb_client.platform.windows_service", "remove")
    }
}

function Assert-Python {
    # The wheels beside this script are built for CPython 3.11 x64: refuse any other Python clearly.
    $found = $null
    try { $found = & $Python -c "import platform, struct, sys; print('%d.%d %d' % (sys.version_info[0], sys.version_info[1], struct.calcsize('P') * 8), platform.python_implementation())" 2>$null } catch { }
    if ($found -ne "3.11 64 CPython") {
        throw "hwb-client needs CPython 3.11 (64-bit) for all users; $Python is $(if ($found) { $found } else { 'not a working Python' }). Install it from python.org, then run this script with -Python 'C:\Program Files\Python311\python.exe'."
    }
}

Assert-Administrator

if ($Uninstall) {
    Remove-HwbService
    if (Test-Path $Venv) { Remove-Item -Recurse -Force $Venv }
    Write-Host "HwbClient removed. Configuration and state are kept in $DataDir."
    return
}

Assert-Python

# 1. The venv, offline from the shipped wheels (ignoring any pip.ini on this server).
$version = & $Python -c "import sys; print('%d.%d' % sys.version_info[:2])"
if ($version -ne "3.11") { throw "$Python is Python $version; hwb-client's wheels are built for 3.11." }
if (Get-Service -Name $ServiceName -ErrorAction SilentlyContinue) {
    Stop-Service -Name $ServiceName -ErrorAction SilentlyContinue
}
Invoke-Checked $Python @("-m", "venv", "--clear", $Venv)
$env:PIP_CONFIG_FILE = "NUL"
$env:PIP_NO_INDEX = "1"
Invoke-Checked $VenvPython @("-m", "pip", "install", "--quiet", "--no-index", "--find-links", $Wheels, "hwb-client[windows]")
# pywin32's DLLs for this venv (pythonservice.exe, pywintypes); harmless when already done.
Invoke-Checked $VenvPython @("-m", "pywin32_postinstall", "-install", "-quiet")

# 2. The service: delayed automatic start, its own account, recovery actions.
if (Get-Service -Name $ServiceName -ErrorAction SilentlyContinue) {
    Invoke-Checked $VenvPython @("-m", "hwb_client.platform.windows_service", "--startup", "delayed", "update")
} else {
    Invoke-Checked $VenvPython @("-m", "hwb_client.platform.windows_service", "--startup", "delayed", "install")
}
Invoke-Checked "sc.exe" @("sidtype", $ServiceName, "unrestricted")
if ($ServicePassword) {
    $plain = [Runtime.InteropServices.Marshal]::PtrToStringAuto(
        [Runtime.InteropServices.Marshal]::SecureStringToBSTR($ServicePassword))
    Invoke-Checked "sc.exe" @("config", $ServiceName, "obj=", $ServiceAccount, "password=", $plain)
} else {
    Invoke-Checked "sc.exe" @("config", $ServiceName, "obj=", $ServiceAccount)
}
Invoke-Checked "sc.exe" @("failure", $ServiceName, "reset=", "86400", "actions=", "restart/60000/restart/60000/restart/600000")
# Apply the recovery actions also when the service stops with an error code (not only on a crash).
Invoke-Checked "sc.exe" @("failureflag", $ServiceName, "1")

# 3. %ProgramData%\HwbClient: private to SYSTEM, Administrators and the service account.
foreach ($dir in @($DataDir, (Join-Path $DataDir "state"), (Join-Path $DataDir "logs"))) {
    New-Item -ItemType Directory -Force -Path $dir | Out-Null
}
$config = Join-Path $DataDir "hwb-client.toml"
if (-not (Test-Path $config)) {
    Copy-Item (Join-Path $PSScriptRoot "hwb-client.example.toml") $config
}
# Well-known SIDs: S-1-5-18 SYSTEM, S-1-5-32-544 Administrators.
Invoke-Checked "icacls.exe" @($DataDir, "/inheritance:r", "/grant:r", "*S-1-5-18:(OI)(CI)F",
    "*S-1-5-32-544:(OI)(CI)F", "${ServiceAccount}:(OI)(CI)RX", "/Q")
foreach ($dir in @("state", "logs")) {
    Invoke-Checked "icacls.exe" @((Join-Path $DataDir $dir), "/grant:r", "${ServiceAccount}:(OI)(CI)M", "/Q")
}
Invoke-Checked "icacls.exe" @($config, "/inheritance:r", "/grant:r", "*S-1-5-18:F", "*S-1-5-32-544:F",
    "${ServiceAccount}:R", "/Q")

Write-Host "HwbClient installed (not started)."
Write-Host "Next: edit $config, run '$Venv\Scripts\hwb-client.exe enrol --school DFES --code CODE',"
Write-Host "check with '$Venv\Scripts\hwb-client.exe check-config', then: Start-Service $ServiceName"
